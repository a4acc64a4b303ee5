//! `math`: integer and floating-point arithmetic, the smallest useful fnhost guest.
//!
//! Integer operations are checked: an overflow is a guest error with a message, never a wrapped
//! result or a trap. Division is on `f64`, and dividing by zero is a guest error too.

use fnhost_guest::{Error, Result, export};

/// Adds y to x.
///
/// Both are 64-bit signed integers; an overflowing sum is an error.
#[export]
pub fn add(x: i64, y: i64) -> Result<i64> {
    x.checked_add(y).ok_or_else(|| overflow("add", x, y))
}

/// Subtracts y from x.
///
/// Both are 64-bit signed integers; an overflowing difference is an error.
#[export]
pub fn subtract(x: i64, y: i64) -> Result<i64> {
    x.checked_sub(y).ok_or_else(|| overflow("subtract", x, y))
}

/// Multiplies x by y.
///
/// Both are 64-bit signed integers; an overflowing product is an error.
#[export]
pub fn multiply(x: i64, y: i64) -> Result<i64> {
    x.checked_mul(y).ok_or_else(|| overflow("multiply", x, y))
}

/// Divides x by y.
///
/// Dividing by zero is an error, not a trap.
#[export]
pub fn divide(x: f64, y: f64) -> Result<f64> {
    if y == 0.0 {
        Err(Error::new("division by zero"))
    } else {
        Ok(x / y)
    }
}

fn overflow(op: &str, x: i64, y: i64) -> Error {
    Error::new(format!(
        "integer overflow: cannot {op} {x} and {y} in 64 bits"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(add(2, 3), Ok(5));
        assert_eq!(subtract(2, 3), Ok(-1));
        assert_eq!(multiply(-4, 3), Ok(-12));
        assert_eq!(divide(1.0, 4.0), Ok(0.25));
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            add(i64::MAX, 1).unwrap_err().message,
            format!("integer overflow: cannot add {} and 1 in 64 bits", i64::MAX)
        );
        assert!(subtract(i64::MIN, 1).is_err());
        assert!(multiply(i64::MAX, 2).is_err());
    }

    #[test]
    fn division_by_zero_is_an_error_without_a_code() {
        assert_eq!(divide(1.0, 0.0), Err(Error::new("division by zero")));
        assert_eq!(divide(1.0, -0.0).unwrap_err().code, None);
    }

    #[test]
    fn rpc_glue() {
        assert_eq!(__fnhost_invoke_add(br#"{"x": 2, "y": 40}"#), b"\x0042");
        assert_eq!(
            __fnhost_invoke_divide(b"[1, 0]"),
            b"\x01{\"message\":\"division by zero\"}"
        );
    }
}
