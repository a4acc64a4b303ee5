//! Writing XML-RPC values from JSON: integers as `<int>`/`<i8>`, other numbers as `<double>`,
//! strings escaped, and an error for what XML 1.0 cannot carry.

use std::fmt::Write as _;

use serde_json::Value;

use super::is_xml_char;

/// Escapes `&`, `<`, `>` and `\r` (so a conforming parser keeps it); refuses characters XML
/// 1.0 cannot carry.
pub(super) fn escape_into(out: &mut String, s: &str) -> Result<(), String> {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if is_xml_char(c) => out.push(c),
            c => {
                return Err(format!(
                    "a string holds the character U+{:04X}, which XML 1.0 cannot carry",
                    u32::from(c)
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn write_int(out: &mut String, n: i64) {
    let tag = if i32::try_from(n).is_ok() {
        "int"
    } else {
        "i8"
    };
    let _ = write!(out, "<value><{tag}>{n}</{tag}></value>");
}

fn write_double(out: &mut String, f: f64) {
    // Display never uses an exponent (XML-RPC's double has none) and round-trips.
    let text = f.to_string();
    let point = if text.contains('.') { "" } else { ".0" };
    let _ = write!(out, "<value><double>{text}{point}</double></value>");
}

/// Appends `value` as an XML-RPC `<value>`; the error says what XML-RPC cannot carry. Results
/// may nest twice as deep as calls (`max_depth`): enough for any sane answer, bounded for a
/// hostile one.
pub fn encode_value(out: &mut String, value: &Value, max_depth: usize) -> Result<(), String> {
    encode_at(out, value, 0, max_depth * 2)
}

fn encode_at(out: &mut String, value: &Value, depth: usize, max: usize) -> Result<(), String> {
    if depth > max {
        return Err(format!("it nests deeper than {max} levels"));
    }
    match value {
        Value::Null => out.push_str("<value><nil/></value>"),
        Value::Bool(b) => {
            let _ = write!(out, "<value><boolean>{}</boolean></value>", u8::from(*b));
        }
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => write_int(out, i),
            (None, Some(f)) if f.is_finite() => write_double(out, f),
            _ => return Err(format!("the number {n} has no XML-RPC form")),
        },
        Value::String(s) => {
            out.push_str("<value><string>");
            escape_into(out, s)?;
            out.push_str("</string></value>");
        }
        Value::Array(items) => {
            out.push_str("<value><array><data>");
            for item in items {
                encode_at(out, item, depth + 1, max)?;
            }
            out.push_str("</data></array></value>");
        }
        Value::Object(members) => {
            out.push_str("<value><struct>");
            for (name, member) in members {
                out.push_str("<member><name>");
                escape_into(out, name)?;
                out.push_str("</name>");
                encode_at(out, member, depth + 1, max)?;
                out.push_str("</member>");
            }
            out.push_str("</struct></value>");
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(v: &Value) -> String {
        let mut out = String::new();
        encode_value(&mut out, v, super::super::DEFAULT_MAX_DEPTH).unwrap();
        out
    }

    #[test]
    fn json_encodes_to_each_xmlrpc_type() {
        assert_eq!(encoded(&json!(null)), "<value><nil/></value>");
        assert_eq!(encoded(&json!(true)), "<value><boolean>1</boolean></value>");
        assert_eq!(encoded(&json!(-7)), "<value><int>-7</int></value>");
        assert_eq!(
            encoded(&json!(2_147_483_648_i64)),
            "<value><i8>2147483648</i8></value>"
        );
        assert_eq!(
            encoded(&json!(u64::MAX)),
            "<value><double>18446744073709552000.0</double></value>"
        );
        assert_eq!(encoded(&json!(2.5)), "<value><double>2.5</double></value>");
        assert_eq!(
            encoded(&json!(1e21)),
            "<value><double>1000000000000000000000.0</double></value>"
        );
        assert_eq!(
            encoded(&json!("a<b>&c\r\n")),
            "<value><string>a&lt;b&gt;&amp;c&#13;\n</string></value>"
        );
        assert_eq!(
            encoded(&json!({"k&": [1, "x"]})),
            "<value><struct><member><name>k&amp;</name><value><array><data>\
             <value><int>1</int></value><value><string>x</string></value>\
             </data></array></value></member></struct></value>"
        );
    }

    #[test]
    fn strings_xml_cannot_carry_are_refused() {
        let mut out = String::new();
        let e = encode_value(&mut out, &json!(["ok", "bell\u{7}"]), 64).unwrap_err();
        assert!(e.contains("U+0007"), "{e}");
        assert!(encode_value(&mut String::new(), &json!({"\u{0}": 1}), 64).is_err());
    }
}
