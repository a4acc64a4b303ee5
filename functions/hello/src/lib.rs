//! `hello`: two tiny functions, the smallest guest worth measuring.
//!
//! docs/GUESTS.md (*Size*) tracks what a guest of this shape weighs: a string in and out with an
//! optional parameter and an error, and a number in and out. `tests/tests/guest_size.rs` keeps
//! it, and `math`, under 60 KB.

use fnhost_guest::{Error, Result, export};

/// Greets someone by name, politely if asked.
///
/// An empty name is an error.
#[export]
pub fn greet(name: String, polite: Option<bool>) -> Result<String> {
    if name.is_empty() {
        return Err(Error::new("name must not be empty").with_code(4000));
    }
    let mut greeting = String::from(if polite.unwrap_or(false) {
        "Good day, "
    } else {
        "Hello, "
    });
    greeting.push_str(&name);
    greeting.push(if polite.unwrap_or(false) { '.' } else { '!' });
    Ok(greeting)
}

/// Converts degrees Fahrenheit to degrees Celsius.
#[export]
pub fn celsius(fahrenheit: f64) -> f64 {
    (fahrenheit - 32.0) * 5.0 / 9.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets() {
        assert_eq!(greet("Ann".into(), None).unwrap(), "Hello, Ann!");
        assert_eq!(greet("Ann".into(), Some(true)).unwrap(), "Good day, Ann.");
        assert_eq!(greet(String::new(), None).unwrap_err().code, Some(4000));
    }

    #[test]
    fn converts() {
        assert_eq!(celsius(212.0), 100.0);
        assert_eq!(celsius(-40.0), -40.0);
    }

    #[test]
    fn rpc_glue() {
        assert_eq!(
            __fnhost_invoke_greet(br#"{"name": "Ann", "polite": true}"#),
            b"\x00\"Good day, Ann.\""
        );
        assert_eq!(__fnhost_invoke_celsius(b"[212]"), b"\x00100.0");
        assert_eq!(
            __fnhost_invoke_greet(br#"[""]"#),
            b"\x01{\"message\":\"name must not be empty\",\"code\":4000}"
        );
    }
}
