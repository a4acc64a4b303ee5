//! The resource limiter of one call's instance: caps its memory and table growth, and
//! remembers a refusal, so a guest that aborts after a refused `memory.grow` is reported as
//! over its memory limit rather than as a bare trap.

use wasmtime::ResourceLimiter;

/// Caps memory and tables of the one instance a call makes, and remembers a refusal.
#[derive(Debug)]
pub(super) struct Limiter {
    pub memory_bytes: usize,
    pub table_elements: usize,
    /// Set when a memory growth was refused: the requested bytes.
    pub memory_refused: Option<usize>,
    /// Set when a table growth was refused: the requested elements.
    pub table_refused: Option<usize>,
    /// The largest linear memory the instance had (its initial size included).
    pub peak_memory: usize,
}

impl Limiter {
    pub fn new(memory_bytes: u64, table_elements: u32) -> Self {
        Self {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            table_elements: table_elements as usize,
            memory_refused: None,
            table_refused: None,
            peak_memory: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_refused = Some(desired);
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_up_to_the_cap_is_allowed_and_past_it_refused_and_remembered() {
        let mut l = Limiter::new(1 << 20, 10);
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(l.memory_refused, None);
        assert!(!l.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert_eq!(l.memory_refused, Some((1 << 20) + 65536));
        assert!(l.table_growing(0, 10, None).unwrap());
        assert!(!l.table_growing(10, 11, None).unwrap());
        assert_eq!(l.table_refused, Some(11));
    }

    #[test]
    fn one_instance_one_memory_one_table() {
        let l = Limiter::new(1, 1);
        assert_eq!((l.instances(), l.memories(), l.tables()), (1, 1, 1));
    }

    #[test]
    fn a_cap_beyond_the_address_space_saturates() {
        let l = Limiter::new(u64::MAX, u32::MAX);
        assert_eq!(l.memory_bytes, usize::MAX);
    }

    /// Through a real instance: `memory.grow` past the cap returns -1 and is remembered.
    #[test]
    fn a_real_memory_grow_past_the_cap_fails_as_the_spec_says() {
        let engine = wasmtime::Engine::default();
        let wasm = wat::parse_str(
            r#"(module (memory (export "m") 1)
                 (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
        )
        .unwrap();
        let module = wasmtime::Module::new(&engine, wasm).unwrap();
        let mut store = wasmtime::Store::new(&engine, Limiter::new(2 << 16, 10));
        store.limiter(|l| l);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let grow = instance
            .get_typed_func::<i32, i32>(&mut store, "grow")
            .unwrap();
        assert_eq!(store.data().peak_memory, 1 << 16, "the initial size counts");
        assert_eq!(grow.call(&mut store, 1).unwrap(), 1, "to the cap: allowed");
        assert_eq!(grow.call(&mut store, 1).unwrap(), -1, "past it: -1");
        assert_eq!(store.data().memory_refused, Some(3 << 16));
        assert_eq!(store.data().peak_memory, 2 << 16);
    }
}
