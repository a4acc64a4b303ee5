//! Trap classification: turns how wasmtime says a call failed into the error kind a caller can
//! act on. Traps are matched by type (`Trap::OutOfFuel`, ...), never by message text.

use wasmtime::Trap;

use super::hostfn::HostFnRefused;
use super::limiter::Limiter;
use crate::config::Limits;
use crate::error::{Error, Kind};

/// Whether `e` is the fuel running out (the first attempt's slice, or the whole budget).
pub(super) fn is_out_of_fuel(e: &wasmtime::Error) -> bool {
    matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel))
}

/// `deadline_exceeded` for a call under `limits`.
pub(super) fn deadline_exceeded(limits: &Limits) -> Error {
    Error::new(
        Kind::DeadlineExceeded,
        format!("the call ran past its deadline of {} ms", limits.timeout_ms),
    )
    .with("limit_ms", limits.timeout_ms)
}

/// The error of a call that failed with `e`, given what its limiter saw.
pub(super) fn classify(
    e: wasmtime::Error,
    limiter: &Limiter,
    limits: &Limits,
    fuel_used: u64,
) -> Error {
    let memory_refused = || {
        limiter.memory_refused.map(|requested| {
            Error::new(
                Kind::MemoryLimit,
                format!(
                    "the guest asked for {} MiB of linear memory; its limit is {} MiB",
                    requested >> 20,
                    limits.memory_bytes >> 20
                ),
            )
            .with("resource", "memory")
            .with("limit_bytes", limits.memory_bytes)
            .with("requested_bytes", requested)
        })
    };
    let table_refused = || {
        limiter.table_refused.map(|requested| {
            Error::new(
                Kind::MemoryLimit,
                format!(
                    "the guest asked for a table of {requested} elements; the limit is {}",
                    limiter.table_elements
                ),
            )
            .with("resource", "table")
            .with("limit_elements", limiter.table_elements)
            .with("requested_elements", requested)
        })
    };
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => Error::new(
                Kind::OutOfFuel,
                format!("the call used up its fuel ({} units)", limits.fuel),
            )
            .with("limit", limits.fuel),
            Trap::Interrupt => deadline_exceeded(limits),
            Trap::StackOverflow => Error::new(
                Kind::StackOverflow,
                "the guest overflowed its wasm stack (too deep recursion)",
            ),
            other => memory_refused().or_else(table_refused).unwrap_or_else(|| {
                Error::new(Kind::GuestTrap, format!("the guest trapped: {other}"))
                    .with("trap", format!("{other:?}"))
            }),
        };
    }
    if let Some(refused) = e.downcast_ref::<HostFnRefused>() {
        return Error::new(Kind::GuestTrap, refused.0.clone()).with("trap", "HostFunction");
    }
    if let Some(error) = memory_refused().or_else(table_refused) {
        return error;
    }
    if e.is::<wasmtime::PoolConcurrencyLimitError>() {
        return Error::new(Kind::Busy, "no free instance slot; try again");
    }
    tracing::error!(error = ?e, fuel_used, "call failed inside the host");
    Error::internal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_LIMITS;

    fn limiter() -> Limiter {
        Limiter::new(DEFAULT_LIMITS.memory_bytes, 100)
    }

    fn kind_of(e: wasmtime::Error, l: &Limiter) -> Error {
        classify(e, l, &DEFAULT_LIMITS, 7)
    }

    #[test]
    fn each_trap_has_its_kind() {
        let l = limiter();
        let fuel = kind_of(Trap::OutOfFuel.into(), &l);
        assert_eq!(fuel.kind, Kind::OutOfFuel);
        assert_eq!(fuel.data["limit"], DEFAULT_LIMITS.fuel);
        let late = kind_of(Trap::Interrupt.into(), &l);
        assert_eq!(late.kind, Kind::DeadlineExceeded);
        assert_eq!(late.data["limit_ms"], DEFAULT_LIMITS.timeout_ms);
        assert_eq!(
            kind_of(Trap::StackOverflow.into(), &l).kind,
            Kind::StackOverflow
        );
        let trap = kind_of(Trap::UnreachableCodeReached.into(), &l);
        assert_eq!(trap.kind, Kind::GuestTrap);
        assert_eq!(trap.data["trap"], "UnreachableCodeReached");
        assert_eq!(
            kind_of(Trap::IntegerDivisionByZero.into(), &l).data["trap"],
            "IntegerDivisionByZero"
        );
        assert!(is_out_of_fuel(&Trap::OutOfFuel.into()));
        assert!(!is_out_of_fuel(&Trap::Interrupt.into()));
    }

    #[test]
    fn a_trap_after_a_refused_growth_is_the_memory_limit() {
        let mut l = limiter();
        l.memory_refused = Some(DEFAULT_LIMITS.memory_bytes as usize + 65536);
        let e = kind_of(Trap::UnreachableCodeReached.into(), &l);
        assert_eq!(e.kind, Kind::MemoryLimit);
        assert_eq!(e.data["resource"], "memory");
        assert_eq!(e.data["limit_bytes"], DEFAULT_LIMITS.memory_bytes);

        let mut l = limiter();
        l.table_refused = Some(101);
        let e = kind_of(Trap::TableOutOfBounds.into(), &l);
        assert_eq!(
            (e.kind, e.data["resource"].as_str()),
            (Kind::MemoryLimit, Some("table"))
        );
        assert_eq!(e.data["requested_elements"], 101);
    }

    #[test]
    fn fuel_and_deadline_win_over_a_refused_growth() {
        let mut l = limiter();
        l.memory_refused = Some(1 << 30);
        assert_eq!(kind_of(Trap::OutOfFuel.into(), &l).kind, Kind::OutOfFuel);
        assert_eq!(
            kind_of(Trap::Interrupt.into(), &l).kind,
            Kind::DeadlineExceeded
        );
    }

    #[test]
    fn a_refusing_host_function_is_a_trap_naming_why() {
        let e = kind_of(
            HostFnRefused("log: the message range is outside".into()).into(),
            &limiter(),
        );
        assert_eq!(e.kind, Kind::GuestTrap);
        assert_eq!(e.data["trap"], "HostFunction");
        assert!(e.message.contains("outside"));
    }

    #[test]
    fn anything_else_is_internal() {
        let e = kind_of(wasmtime::Error::msg("something broke"), &limiter());
        assert_eq!(e.kind, Kind::Internal);
        assert!(!e.message.contains("broke"), "details stay in the log");
    }
}
