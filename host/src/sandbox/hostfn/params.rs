//! `fnhost.params(ptr)` (ABI v2): copies the call's params, as many bytes as the call function
//! was told, into guest memory at `ptr`. The guest calls it from inside its one entry, into a
//! buffer of its own allocator, so a call enters the guest once. A range outside memory traps.

use wasmtime::{Caller, Linker};

use super::{HostFn, HostFnRefused};
use crate::sandbox::state::CallState;

pub(in crate::sandbox) const PARAMS: HostFn = HostFn {
    module: fnhost_abi::HOST_MODULE,
    name: fnhost_abi::PARAMS_IMPORT,
    register,
};

fn register(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(PARAMS.module, PARAMS.name, params)?;
    Ok(())
}

fn params(mut caller: Caller<'_, CallState>, ptr: i32) -> wasmtime::Result<()> {
    let Some(memory) = caller.data().memory else {
        return Err(HostFnRefused("params: called before the call began".into()).into());
    };
    let (bytes, state) = memory.data_and_store_mut(&mut caller);
    let (start, len) = (ptr as u32 as usize, state.params.len());
    let Some(to) = bytes.get_mut(start..start + len) else {
        return Err(HostFnRefused(format!(
            "params: the destination range {start}..{} is outside the guest's memory",
            start + len
        ))
        .into());
    };
    to.copy_from_slice(&state.params);
    Ok(())
}
