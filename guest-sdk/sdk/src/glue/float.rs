//! Decimal text to the nearest `f64`, exactly, in little code and without tables.
//!
//! Rust's own parser (`str::parse::<f64>`) is exact and fast, but its Eisel-Lemire step carries
//! a 10.4 KB table of powers of five, a sixth of a small guest (docs/GUESTS.md, *Size*). This
//! keeps the two steps of it that need no table: Clinger's fast path (a mantissa of at most
//! 2^53 times or divided by an exact power of ten up to 10^22 is one correctly rounded IEEE
//! operation), which covers the numbers clients usually send; 128-bit integer arithmetic for
//! a full 64-bit mantissa and powers of ten up to 10^±19, which covers doubles printed at full
//! precision (17 digits); and for everything else the "simple decimal conversion" core falls
//! back to (`core::num::dec2flt::slow`, after Nigel Tao's
//! description of Go's `strconv`): the digits kept as a decimal, shifted by powers of two until
//! they sit between 1/2 and 1, then rounded to 53 bits, half to even. Slower than Eisel-Lemire
//! on long inputs, exactly as right; a property test compares it with Rust's parser.

/// Digits kept; longer inputs are truncated and remembered as such (enough for exact rounding:
/// any decimal halfway between two doubles has fewer than 768 significant digits).
const MAX_DIGITS: usize = 768;
/// Past this, the value is zero or infinite whatever its digits.
const DECIMAL_POINT_RANGE: i32 = 2047;

/// The value of `text`, a number JSON's grammar accepts (the caller has checked it).
pub fn parse(text: &str) -> f64 {
    let (negative, digits) = match text.as_bytes().split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text.as_bytes()),
    };
    let value = match decompose(digits) {
        Some((mantissa, exp10)) => clinger(mantissa, exp10)
            .or_else(|| wide(mantissa, exp10))
            .unwrap_or_else(|| slow(digits)),
        None => slow(digits),
    };
    if negative { -value } else { value }
}

/// The number as `mantissa × 10^exp10`; `None` when the digits do not fit a `u64`.
fn decompose(s: &[u8]) -> Option<(u64, i64)> {
    let mut mantissa: u64 = 0;
    let mut exp10: i64 = 0;
    let mut i = 0;
    let mut fraction = false;
    while let Some(&b) = s.get(i) {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                if fraction {
                    exp10 -= 1;
                }
            }
            b'.' => fraction = true,
            _ => break,
        }
        i += 1;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        let negative = s.get(i) == Some(&b'-');
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let mut e: i64 = 0;
        for &b in s.get(i..)? {
            e = e.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
            if e > 1000 {
                return None;
            }
        }
        exp10 += if negative { -e } else { e };
    }
    Some((mantissa, exp10))
}

/// Clinger's fast path: a mantissa of at most 2^53 and an exact power of ten up to 10^22 make
/// one correctly rounded IEEE operation. `None` when it does not apply.
fn clinger(mantissa: u64, exp10: i64) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if mantissa > 1 << 53 || !(-22..=22).contains(&exp10) {
        return None;
    }
    let m = mantissa as f64;
    let power = POW10[exp10.unsigned_abs() as usize];
    Some(if exp10 < 0 { m / power } else { m * power })
}

/// The full 64-bit mantissa (17 to 19 digits: what a double printed at full precision has)
/// with a power of ten up to 10^19, exactly, in 128-bit integers: `mantissa × 10^e` is an exact
/// `u128` that Rust's `as f64` rounds correctly, and `mantissa / 10^e` is an integer division
/// of the mantissa shifted to the top of a `u128`, which leaves over 63 bits of quotient and a
/// remainder that says whether anything was cut. Hundreds of operations instead of the
/// thousands of the decimal conversion. `None` past 10^±19 or for a zero mantissa.
fn wide(mantissa: u64, exp10: i64) -> Option<f64> {
    if mantissa == 0 || !(-19..=19).contains(&exp10) {
        return None;
    }
    let power = 10u128.pow(exp10.unsigned_abs() as u32);
    if exp10 >= 0 {
        // < 2^64 × 10^19 < 2^128.
        return Some((u128::from(mantissa) * power) as f64);
    }
    let shift = u128::from(mantissa).leading_zeros();
    let n = u128::from(mantissa) << shift;
    let (q, cut) = (n / power, n % power != 0);
    // q >= 2^127 / 10^19 > 2^63: round it to 53 bits, half to even, the remainder breaking ties.
    let drop = 128 - q.leading_zeros() - 53;
    let half = 1u128 << (drop - 1);
    let rest = q & ((1u128 << drop) - 1);
    let mut m = (q >> drop) as u64;
    if rest > half || (rest == half && (cut || m & 1 == 1)) {
        m += 1;
    }
    // m <= 2^53 is exact as an f64, and so is the power of two: one exact product.
    let exp2 = i64::from(drop) - i64::from(shift);
    Some(m as f64 * f64::from_bits(((1023 + exp2) as u64) << 52))
}

/// A decimal number `0.d1d2d3... × 10^decimal_point`, digits as values 0..=9.
struct Decimal {
    num_digits: usize,
    decimal_point: i32,
    /// Non-zero digits were dropped past `MAX_DIGITS`.
    truncated: bool,
    digits: [u8; MAX_DIGITS],
}

impl Decimal {
    fn parse(s: &[u8]) -> Self {
        let mut d = Decimal {
            num_digits: 0,
            decimal_point: 0,
            truncated: false,
            digits: [0; MAX_DIGITS],
        };
        let mut i = 0;
        let mut seen_point = false;
        let mut fraction_digits: i32 = 0;
        while let Some(&b) = s.get(i) {
            match b {
                b'0'..=b'9' => {
                    if seen_point {
                        fraction_digits = fraction_digits.saturating_add(1);
                    }
                    // Leading zeros are not digits.
                    if d.num_digits != 0 || b != b'0' {
                        if d.num_digits < MAX_DIGITS {
                            d.digits[d.num_digits] = b - b'0';
                        } else if b != b'0' {
                            d.truncated = true;
                        }
                        d.num_digits += 1;
                    } else if seen_point {
                        // A zero right after the point moves the point instead.
                        d.decimal_point -= 1;
                        fraction_digits -= 1;
                    }
                }
                b'.' => seen_point = true,
                _ => break,
            }
            i += 1;
        }
        d.decimal_point += d.num_digits as i32 - fraction_digits;
        if d.num_digits > MAX_DIGITS {
            d.num_digits = MAX_DIGITS;
        }
        if let Some(b'e' | b'E') = s.get(i) {
            i += 1;
            let negative = s.get(i) == Some(&b'-');
            if matches!(s.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let mut e: i32 = 0;
            for &b in s.get(i..).unwrap_or_default() {
                if e < 0x10000 {
                    e = 10 * e + i32::from(b - b'0');
                }
            }
            d.decimal_point += if negative { -e } else { e };
        }
        d.trim();
        d
    }

    fn trim(&mut self) {
        while self.num_digits != 0 && self.digits[self.num_digits - 1] == 0 {
            self.num_digits -= 1;
        }
    }

    /// The integer part, rounded half to even (and up when digits were dropped).
    fn round(&self) -> u64 {
        if self.num_digits == 0 || self.decimal_point < 0 {
            return 0;
        } else if self.decimal_point > 18 {
            return u64::MAX;
        }
        let dp = self.decimal_point as usize;
        let mut n = 0u64;
        for i in 0..dp {
            n *= 10;
            if i < self.num_digits {
                n += u64::from(self.digits[i]);
            }
        }
        let mut round_up = false;
        if dp < self.num_digits {
            round_up = self.digits[dp] >= 5;
            if self.digits[dp] == 5 && dp + 1 == self.num_digits {
                round_up = self.truncated || (dp != 0 && self.digits[dp - 1] & 1 != 0);
            }
        }
        n + u64::from(round_up)
    }

    /// Multiplies by `2^shift` (`shift` at most 60).
    fn left_shift(&mut self, shift: usize) {
        if self.num_digits == 0 {
            return;
        }
        // The product, least significant digit first, then moved into place.
        let mut out = [0u8; MAX_DIGITS + 20];
        let mut len = 0;
        let mut n = 0u64;
        let mut read = self.num_digits;
        while read != 0 || n != 0 {
            if read != 0 {
                read -= 1;
                n += u64::from(self.digits[read]) << shift;
            }
            out[len] = (n % 10) as u8;
            n /= 10;
            len += 1;
        }
        let new_digits = len - self.num_digits;
        // Keep the most significant MAX_DIGITS.
        let keep = len.min(MAX_DIGITS);
        if out[..len - keep].iter().any(|&d| d != 0) {
            self.truncated = true;
        }
        for (k, digit) in self.digits[..keep].iter_mut().enumerate() {
            *digit = out[len - 1 - k];
        }
        self.num_digits = keep;
        self.decimal_point += new_digits as i32;
        self.trim();
    }

    /// Divides by `2^shift` (`shift` at most 60).
    fn right_shift(&mut self, shift: usize) {
        let mut read = 0;
        let mut write = 0;
        let mut n = 0u64;
        while n >> shift == 0 {
            if read < self.num_digits {
                n = 10 * n + u64::from(self.digits[read]);
                read += 1;
            } else if n == 0 {
                return;
            } else {
                while n >> shift == 0 {
                    n *= 10;
                    read += 1;
                }
                break;
            }
        }
        self.decimal_point -= read as i32 - 1;
        if self.decimal_point < -DECIMAL_POINT_RANGE {
            self.num_digits = 0;
            self.decimal_point = 0;
            self.truncated = false;
            return;
        }
        let mask = (1u64 << shift) - 1;
        while read < self.num_digits {
            let digit = (n >> shift) as u8;
            n = 10 * (n & mask) + u64::from(self.digits[read]);
            read += 1;
            self.digits[write] = digit;
            write += 1;
        }
        while n > 0 {
            let digit = (n >> shift) as u8;
            n = 10 * (n & mask);
            if write < MAX_DIGITS {
                self.digits[write] = digit;
                write += 1;
            } else if digit > 0 {
                self.truncated = true;
            }
        }
        self.num_digits = write;
        self.trim();
    }
}

/// The simple decimal conversion (core's `parse_long_mantissa` for `f64`).
fn slow(s: &[u8]) -> f64 {
    const MANTISSA_BITS: usize = 52;
    const MINIMUM_EXPONENT: i32 = -1023;
    const INFINITE_POWER: i32 = 0x7ff;
    const MAX_SHIFT: usize = 60;
    const POWERS: [u8; 19] = [
        0, 3, 6, 9, 13, 16, 19, 23, 26, 29, 33, 36, 39, 43, 46, 49, 53, 56, 59,
    ];
    let shift_for = |n: usize| POWERS.get(n).map_or(MAX_SHIFT, |&p| usize::from(p));
    let infinity = f64::INFINITY;

    let mut d = Decimal::parse(s);
    if d.num_digits == 0 || d.decimal_point < -324 {
        return 0.0;
    } else if d.decimal_point >= 310 {
        return infinity;
    }
    let mut exp2: i32 = 0;
    // Shift right toward (1/2 ... 1].
    while d.decimal_point > 0 {
        let shift = shift_for(d.decimal_point as usize);
        d.right_shift(shift);
        if d.decimal_point < -DECIMAL_POINT_RANGE {
            return 0.0;
        }
        exp2 += shift as i32;
    }
    // Shift left toward (1/2 ... 1].
    while d.decimal_point <= 0 {
        let shift = if d.decimal_point == 0 {
            match d.digits[0] {
                digit if digit >= 5 => break,
                0 | 1 => 2,
                _ => 1,
            }
        } else {
            shift_for((-d.decimal_point) as usize)
        };
        d.left_shift(shift);
        if d.decimal_point > DECIMAL_POINT_RANGE {
            return infinity;
        }
        exp2 -= shift as i32;
    }
    // In [1/2, 1); the binary format wants [1, 2).
    exp2 -= 1;
    while MINIMUM_EXPONENT + 1 > exp2 {
        let n = ((MINIMUM_EXPONENT + 1 - exp2) as usize).min(MAX_SHIFT);
        d.right_shift(n);
        exp2 += n as i32;
    }
    if exp2 - MINIMUM_EXPONENT >= INFINITE_POWER {
        return infinity;
    }
    // Shift to the hidden bit, then round to the 53 bits of the mantissa.
    d.left_shift(MANTISSA_BITS + 1);
    let mut mantissa = d.round();
    if mantissa >= 1 << (MANTISSA_BITS + 1) {
        // Rounding carried into a new bit: shift back.
        d.right_shift(1);
        exp2 += 1;
        mantissa = d.round();
        if exp2 - MINIMUM_EXPONENT >= INFINITE_POWER {
            return infinity;
        }
    }
    let mut power2 = exp2 - MINIMUM_EXPONENT;
    if mantissa < 1 << MANTISSA_BITS {
        // Subnormal.
        power2 -= 1;
    }
    mantissa &= (1 << MANTISSA_BITS) - 1;
    f64::from_bits(mantissa | (u64::from(power2 as u32) << MANTISSA_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str) {
        let want: f64 = text.parse().unwrap();
        assert_eq!(parse(text).to_bits(), want.to_bits(), "{text}");
        let digits = text.trim_start_matches('-');
        assert_eq!(
            slow(digits.as_bytes()).to_bits(),
            want.abs().to_bits(),
            "slow {text}"
        );
    }

    /// `wide` alone against Rust's parser, where it applies.
    #[test]
    fn wide_agrees_where_it_applies() {
        for (mantissa, exp10) in [
            (44457691823344317u64, -11i64),
            (u64::MAX, -19),
            (u64::MAX, 19),
            (9007199254740993, 0),
            (9007199254740993, -1),
            (1, -19),
            (10000000000000000000, -19),
            (12345678901234567890, -5),
            (2, -1),
        ] {
            let want: f64 = format!("{mantissa}e{exp10}").parse().unwrap();
            assert_eq!(
                wide(mantissa, exp10).unwrap().to_bits(),
                want.to_bits(),
                "{mantissa}e{exp10}"
            );
        }
    }

    #[test]
    fn hard_and_edge_cases() {
        for text in [
            "0",
            "-0",
            "0.0",
            "1",
            "0.1",
            "0.3",
            "1e22",
            "1e23",
            "9007199254740993",
            "9007199254740992",
            "-444576.91823344317",
            "2.2250738585072011e-308",
            "2.2250738585072014e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e400",
            "1e-400",
            "0.000000000000000000000000000001",
            "123456789012345678901234567890",
            "7.038531e-26",
            "8.988465674311580536566680e307",
            "1.00000000000000011102230246251565404236316680908203125",
            "1.00000000000000011102230246251565404236316680908203124",
            "1.00000000000000011102230246251565404236316680908203126",
            "100000000000000000000000000000000000000000000000000000000000000000000000000000000e-80",
            "0e999",
            "0.0000e-5",
            "10.5e-1",
            "1E+2",
        ] {
            check(text);
        }
        // A halfway case with more digits than are kept: decided by the dropped ones.
        let long = format!(
            "1.00000000000000011102230246251565404236316680908203125{}1",
            "0".repeat(800)
        );
        check(&long);
    }

    proptest! {
        #[test]
        fn agrees_with_rust(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
            for text in [format!("{x:?}"), format!("{x:e}"), format!("{x:.17e}"), format!("{x:.25e}"), format!("{x:.3e}")] {
                check(&text);
            }
        }

        #[test]
        fn wide_agrees_with_rust(mantissa in any::<u64>(), exp10 in -19i64..=19) {
            let want: f64 = format!("{mantissa}e{exp10}").parse().unwrap();
            if let Some(got) = wide(mantissa, exp10) {
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{}e{}", mantissa, exp10);
            }
        }

        #[test]
        fn agrees_with_rust_on_digit_strings(
            int in "[1-9][0-9]{0,30}|0",
            frac in "[0-9]{0,30}",
            exp in -340i32..340,
        ) {
            check(&format!("{int}.{frac}e{exp}").replace(".e", "e"));
            if !frac.is_empty() {
                check(&format!("{int}.{frac}e{exp}"));
            }
        }
    }
}
