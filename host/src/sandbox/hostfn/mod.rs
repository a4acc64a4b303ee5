//! Host functions: what a guest may import, each a unit that adds itself to the linker.
//!
//! [`ALL`] is the only list. The linker is built from it ([`add_all`]), and the pre-pass at
//! upload accepts exactly the imports it names ([`offers`]), so a new host function is one new
//! file here and one line in [`ALL`]. `docs/ABI.md` documents each.

mod log;
mod params;

use wasmtime::Linker;

use super::state::CallState;

/// One host function.
pub(super) struct HostFn {
    /// The import module, `fnhost`.
    pub module: &'static str,
    /// The import name.
    pub name: &'static str,
    /// Adds the function to the linker.
    pub register: fn(&mut Linker<CallState>) -> wasmtime::Result<()>,
}

/// Every host function a guest may import.
pub(super) const ALL: &[HostFn] = &[log::LOG, params::PARAMS];

/// Adds every host function to `linker`.
pub(super) fn add_all(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    ALL.iter().try_for_each(|f| (f.register)(linker))
}

/// Whether the host offers `module.name`.
pub(super) fn offers(module: &str, name: &str) -> bool {
    ALL.iter().any(|f| f.module == module && f.name == name)
}

/// What the host offers, for messages: "`fnhost.log`".
pub(super) fn offered() -> String {
    ALL.iter()
        .map(|f| format!("`{}.{}`", f.module, f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A host function refused what the guest asked (e.g. a log range outside memory); the call
/// traps with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct HostFnRefused(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_log_params_and_only_what_it_registers() {
        assert!(offers(fnhost_abi::HOST_MODULE, fnhost_abi::LOG_IMPORT));
        assert!(offers(fnhost_abi::HOST_MODULE, fnhost_abi::PARAMS_IMPORT));
        assert!(!offers("env", "system"));
        assert_eq!(offered(), "`fnhost.log`, `fnhost.params`");
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        add_all(&mut linker).unwrap();
        // The linker lists in its own (hash) order.
        let mut registered: Vec<(String, String)> = linker
            .iter(&mut wasmtime::Store::<CallState>::new(
                &engine,
                CallState::for_tests(),
            ))
            .map(|(m, n, _)| (m.to_owned(), n.to_owned()))
            .collect();
        registered.sort();
        let mut listed: Vec<(String, String)> = ALL
            .iter()
            .map(|f| (f.module.to_owned(), f.name.to_owned()))
            .collect();
        listed.sort();
        assert_eq!(registered, listed);
    }
}
