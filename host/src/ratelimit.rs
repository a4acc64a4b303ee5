//! Rate limits per client address, for `public` functions (`--public-rate-per-s`): calls per
//! second with a burst of the same size, with `governor`'s keyed limiter.
//!
//! Memory is bounded: an address's state is dropped once it has refilled (at most a second
//! after its last call), pruned on a timer and whenever more than [`MAX_TRACKED`] addresses
//! are held, so a spray of addresses cannot grow it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::error::{Error, Kind};

/// Addresses held before a check prunes at once (besides the timer).
pub const MAX_TRACKED: usize = 65_536;

/// One rate for every client address.
#[derive(Debug)]
pub struct PerAddress {
    rate: u32,
    limiter: RateLimiter<IpAddr, DashMapStateStore<IpAddr>, DefaultClock>,
}

impl PerAddress {
    pub fn new(rate_per_s: NonZeroU32) -> Self {
        Self {
            rate: rate_per_s.get(),
            limiter: RateLimiter::keyed(Quota::per_second(rate_per_s)),
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes one call for `ip`, or says how long until one is free.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > MAX_TRACKED {
            self.prune();
        }
        self.limiter
            .check_key(&ip.to_canonical())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops the state of addresses that have refilled.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Addresses held now.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// The `rate_limited` answer: retry after `wait`.
pub fn limited(wait: Duration, whose: &str, rate: u32) -> Error {
    let retry_after_ms = (wait.as_millis() as u64).max(1);
    Error::new(
        Kind::RateLimited,
        format!(
            "{whose} is over its rate of {rate} calls per second; retry in {retry_after_ms} ms"
        ),
    )
    .with("retry_after_ms", retry_after_ms)
    .with("rate_per_s", rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_burst() {
        let l = PerAddress::new(NonZeroU32::new(3).unwrap());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| l.take(a).is_ok()));
        let wait = l.take(a).unwrap_err();
        assert!(wait <= Duration::from_millis(400), "{wait:?}");
        assert!(l.take(b).is_ok(), "another address is not affected");
        // The mapped form is the same address.
        assert!(l.take("::ffff:10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn a_spray_of_addresses_is_forgotten_once_refilled() {
        let l = PerAddress::new(NonZeroU32::new(50).unwrap());
        for i in 0..100_000u32 {
            let _ = l.take(IpAddr::from(i.to_be_bytes()));
        }
        assert!(
            l.tracked() <= MAX_TRACKED + 1,
            "pruned while spraying: {}",
            l.tracked()
        );
        std::thread::sleep(Duration::from_millis(1100));
        l.prune();
        assert_eq!(l.tracked(), 0);
    }
}
