//! `fnhost.log(level, ptr, len)`: a guest's log line, with its module, function and digest
//! attached. Past the line cap a line is counted and dropped before memory is touched, so a
//! flood stays cheap; a range outside memory traps.

use fnhost_abi::LogLevel;
use wasmtime::{Caller, Extern, Linker};

use super::{HostFn, HostFnRefused};
use crate::sandbox::state::CallState;

pub(in crate::sandbox) const LOG: HostFn = HostFn {
    module: fnhost_abi::HOST_MODULE,
    name: fnhost_abi::LOG_IMPORT,
    register,
};

fn register(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(LOG.module, LOG.name, log)?;
    Ok(())
}

fn log(mut caller: Caller<'_, CallState>, level: i32, ptr: i32, len: i32) -> wasmtime::Result<()> {
    if !caller.data_mut().log.admit() {
        return Ok(());
    }
    let Some(Extern::Memory(memory)) = caller.get_export(fnhost_abi::MEMORY_EXPORT) else {
        return Err(HostFnRefused("log: the module has no memory".into()).into());
    };
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let Some(bytes) = memory.data(&caller).get(start..start + len) else {
        return Err(HostFnRefused(format!(
            "log: the message range {start}..{} is outside the guest's memory",
            start + len
        ))
        .into());
    };
    let cap = caller.data().log.caps.message_bytes;
    let message = String::from_utf8_lossy(&bytes[..len.min(cap)]).into_owned();
    let state = caller.data_mut();
    state.log(LogLevel::from_raw(level), message);
    Ok(())
}
