//! Reading a guest's output (`docs/ABI.md`, *A call*): a status byte and a UTF-8 JSON payload
//! at the place the packed return value names. Pure: it sees only the guest's memory as bytes,
//! so it is unit-tested and fuzzed without a sandbox.

use fnhost_abi::{GuestError, InvalidParams, Status};
use serde_json::value::RawValue;

use crate::error::{Error, Kind};

/// A `bad_guest_output` error.
pub(super) fn bad_output(message: impl Into<String>) -> Error {
    Error::new(Kind::BadGuestOutput, message)
}

/// Checks the output at `ptr..ptr+len` of `memory` and copies the result out; a guest error or
/// invalid-params output becomes the matching [`Error`]. At most `max_result` bytes of result.
pub fn read_output(
    memory: &[u8],
    ptr: u32,
    len: u32,
    max_result: usize,
) -> Result<Box<RawValue>, Error> {
    let len = len as usize;
    if len == 0 {
        return Err(bad_output(
            "the guest returned an empty output (no status byte)",
        ));
    }
    if len - 1 > max_result {
        return Err(Error::new(
            Kind::BadGuestOutput,
            format!(
                "the guest returned {} bytes, above the result limit of {max_result} bytes",
                len - 1
            ),
        )
        .with("limit_bytes", max_result)
        .with("returned_bytes", len - 1));
    }
    let start = ptr as usize;
    let Some(bytes) = memory.get(start..start + len) else {
        return Err(bad_output(format!(
            "the guest's output range {start:#x}..{:#x} is outside its {}-byte memory",
            start + len,
            memory.len()
        )));
    };
    let Some(status) = Status::from_byte(bytes[0]) else {
        return Err(bad_output(format!(
            "the guest's output starts with status {}, which docs/ABI.md does not define",
            bytes[0]
        )));
    };
    let text = std::str::from_utf8(&bytes[1..]).map_err(|e| {
        bad_output(format!(
            "the guest's output is not valid UTF-8 (at byte {})",
            e.valid_up_to() + 1
        ))
    })?;
    match status {
        Status::Ok => {
            let raw: &RawValue = serde_json::from_str(text)
                .map_err(|e| bad_output(format!("the guest's result is not valid JSON: {e}")))?;
            Ok(raw.to_owned())
        }
        Status::Error => {
            let guest: GuestError = serde_json::from_str(text)
                .map_err(|e| bad_output(format!("the guest's error payload is malformed: {e}")))?;
            let mut error = Error::new(Kind::GuestError, guest.message);
            if let Some(code) = guest.code.filter(|c| !(-32768..=-32000).contains(c)) {
                error.guest_code = Some(code);
            }
            if let Some(data) = guest.data {
                error = error.with("guest_data", data);
            }
            Err(error)
        }
        Status::InvalidParams => {
            let invalid: InvalidParams = serde_json::from_str(text).map_err(|e| {
                bad_output(format!(
                    "the guest's invalid-params payload is malformed: {e}"
                ))
            })?;
            let mut error = Error::new(Kind::InvalidParams, invalid.message);
            if let Some(param) = invalid.param {
                error = error.with("param", param);
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_ok_is_passed_through_verbatim() {
        let mem = b"xx\0{\"a\": [1, 2]}";
        let v = read_output(mem, 2, (mem.len() - 2) as u32, 100).unwrap();
        assert_eq!(v.get(), "{\"a\": [1, 2]}");
    }

    #[test]
    fn output_out_of_bounds_and_huge_are_bad_output() {
        let mem = [0u8; 16];
        let e = read_output(&mem, 10, 10, 100).unwrap_err();
        assert_eq!(e.kind, Kind::BadGuestOutput);
        assert!(e.message.contains("outside"), "{}", e.message);
        let e = read_output(&mem, u32::MAX, u32::MAX, 100).unwrap_err();
        assert!(
            e.message.contains("above the result limit"),
            "{}",
            e.message
        );
        let e = read_output(&mem, u32::MAX, 8, 100).unwrap_err();
        assert!(e.message.contains("outside"), "{}", e.message);
    }

    #[test]
    fn output_bad_utf8_json_status() {
        let e = read_output(b"\0\xff\xfe", 0, 3, 100).unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
        let e = read_output(b"\0{nope", 0, 6, 100).unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = read_output(b"\x09{}", 0, 3, 100).unwrap_err();
        assert!(e.message.contains("status 9"), "{}", e.message);
        let e = read_output(b"\0", 0, 0, 100).unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }

    #[test]
    fn guest_errors_keep_their_code_unless_reserved() {
        let out = b"\x01{\"message\":\"no\",\"code\":42,\"data\":[1]}";
        let e = read_output(out, 0, out.len() as u32, 100).unwrap_err();
        assert_eq!(
            (e.kind, e.code(), e.message.as_str()),
            (Kind::GuestError, 42, "no")
        );
        assert_eq!(e.data["guest_data"], serde_json::json!([1]));

        let out = b"\x01{\"message\":\"no\",\"code\":-32601}";
        let e = read_output(out, 0, out.len() as u32, 100).unwrap_err();
        assert_eq!(e.code(), Kind::GuestError.code());
    }

    #[test]
    fn invalid_params_name_the_param() {
        let out = b"\x02{\"message\":\"missing parameter `y`\",\"param\":\"y\"}";
        let e = read_output(out, 0, out.len() as u32, 100).unwrap_err();
        assert_eq!(e.kind, Kind::InvalidParams);
        assert_eq!(e.data["param"], "y");
    }
}
