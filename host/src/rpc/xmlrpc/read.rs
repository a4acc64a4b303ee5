//! Reading a `methodCall`: bytes → element tree (refusing DOCTYPEs, undefined entities, deep
//! nesting and characters XML 1.0 cannot carry) → method name and JSON params.

use quick_xml::events::{BytesRef, Event};
use serde_json::{Map, Number, Value};

use super::is_xml_char;
use crate::error::{Error, Kind};

/// How deep elements may nest for values nested `max_depth` levels: `methodCall/params/param`,
/// then three per value level (`value/array/data`, `value/struct/member`), with room for a
/// leaf and its `name`.
fn max_element_depth(max_depth: usize) -> usize {
    3 + 3 * (max_depth + 1) + 2
}

/// A parsed `methodCall`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    /// Positional params: XML-RPC has no named ones.
    pub params: Vec<Value>,
}

/// An element: its name and its children (text runs merged).
#[derive(Debug, Default)]
pub(super) struct Element {
    name: String,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Element(Element),
    Text(String),
}

fn parse_error(message: impl Into<String>) -> Error {
    Error::new(Kind::ParseError, message)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Kind::InvalidRequest, message)
}

fn check_chars(text: &str) -> Result<(), Error> {
    match text.chars().find(|c| !is_xml_char(*c)) {
        None => Ok(()),
        Some(c) => Err(parse_error(format!(
            "not well-formed XML: the character U+{:04X} is not allowed in XML 1.0",
            u32::from(c)
        ))),
    }
}

/// The text an entity or character reference stands for; only the predefined entities.
fn resolve_ref(r: &BytesRef<'_>) -> Result<char, Error> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => Ok(c),
            _ => Err(parse_error(format!(
                "not well-formed XML: `&{};` is not a character XML 1.0 allows",
                &**r
            ))),
        };
    }
    match &**r {
        "amp" => Ok('&'),
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        other => Err(parse_error(format!(
            "the entity `&{other};` is not defined: only &amp; &lt; &gt; &quot; &apos; and \
             character references are accepted"
        ))),
    }
}

/// Parses the document into its root element, refusing DOCTYPEs, undefined entities and
/// nesting past what values nested `max_depth` levels need.
pub(super) fn parse_tree(body: &[u8], max_depth: usize) -> Result<Element, Error> {
    let text = std::str::from_utf8(body)
        .map_err(|_| parse_error("the body is not UTF-8 (the only encoding accepted)"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let not_well_formed = |e: quick_xml::Error| parse_error(format!("not well-formed XML: {e}"));
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(not_well_formed)?;
        // Text, CDATA and references outside the root element may only be whitespace.
        let append = |stack: &mut Vec<Element>, s: &str| -> Result<(), Error> {
            check_chars(s)?;
            match stack.last_mut() {
                Some(parent) => {
                    if let Some(Node::Text(t)) = parent.children.last_mut() {
                        t.push_str(s);
                    } else {
                        parent.children.push(Node::Text(s.to_owned()));
                    }
                    Ok(())
                }
                None if s.trim().is_empty() => Ok(()),
                None => Err(parse_error(
                    "not well-formed XML: text outside the root element",
                )),
            }
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root.is_some() {
                    return Err(parse_error(
                        "not well-formed XML: more than one root element",
                    ));
                }
                for attr in start.attributes() {
                    attr.map_err(|e| parse_error(format!("not well-formed XML: {e}")))?;
                }
                let name = start.name().as_ref().to_owned();
                let element = Element {
                    name,
                    children: Vec::new(),
                };
                if matches!(event, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(element)),
                        None => root = Some(element),
                    }
                } else {
                    if stack.len() >= max_element_depth(max_depth) {
                        return Err(invalid(format!(
                            "the call nests deeper than {max_depth} levels of values"
                        )));
                    }
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(parse_error("not well-formed XML: unexpected end tag"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(element)),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => append(&mut stack, &t.xml10_content())?,
            Event::CData(c) => append(&mut stack, &c.xml10_content())?,
            Event::GeneralRef(r) => {
                let c = resolve_ref(&r)?;
                append(&mut stack, c.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => {
                return Err(parse_error(
                    "DOCTYPE declarations are not accepted (no DTDs, no entity declarations)",
                ));
            }
            Event::Decl(decl) => {
                if let Some(Ok(encoding)) = decl.encoding() {
                    let encoding = encoding.to_ascii_lowercase();
                    if !matches!(encoding.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                        return Err(parse_error(format!(
                            "the encoding `{encoding}` is not supported: send UTF-8"
                        )));
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(parse_error(
            "not well-formed XML: the document ends inside an element",
        ));
    }
    root.ok_or_else(|| parse_error("the body holds no XML element"))
}

impl Element {
    /// The child elements; text between them must be whitespace.
    fn elements(&self) -> Result<Vec<&Element>, Error> {
        let mut out = Vec::with_capacity(self.children.len());
        for child in &self.children {
            match child {
                Node::Element(e) => out.push(e),
                Node::Text(t) if t.trim().is_empty() => {}
                Node::Text(_) => {
                    return Err(invalid(format!("<{}> holds unexpected text", self.name)));
                }
            }
        }
        Ok(out)
    }

    /// The text content; child elements are refused.
    fn text(&self) -> Result<&str, Error> {
        match self.children.as_slice() {
            [] => Ok(""),
            [Node::Text(t)] => Ok(t),
            _ => Err(invalid(format!("<{}> must hold only text", self.name))),
        }
    }

    /// The one child element, which must be named `name`.
    fn only(&self, name: &str) -> Result<&Element, Error> {
        match self.elements()?.as_slice() {
            [e] if e.name == name => Ok(e),
            _ => Err(invalid(format!(
                "<{}> must hold exactly one <{name}>",
                self.name
            ))),
        }
    }
}

/// Parses a `methodCall` document whose values nest at most `max_depth` levels.
pub fn parse_call(body: &[u8], max_depth: usize) -> Result<Call, Error> {
    let root = parse_tree(body, max_depth)?;
    if root.name != "methodCall" {
        return Err(invalid(format!(
            "the root element is <{}>, not <methodCall>",
            root.name
        )));
    }
    let (mut method, mut params) = (None, None);
    for child in root.elements()? {
        let slot = match child.name.as_str() {
            "methodName" => &mut method,
            "params" => &mut params,
            other => return Err(invalid(format!("<methodCall> cannot hold <{other}>"))),
        };
        if slot.replace(child).is_some() {
            return Err(invalid(format!("<methodCall> holds two <{}>", child.name)));
        }
    }
    let method = method
        .ok_or_else(|| invalid("<methodCall> has no <methodName>"))?
        .text()?
        .trim();
    if method.is_empty() {
        return Err(invalid("<methodName> is empty"));
    }
    let params = match params {
        None => Vec::new(),
        Some(params) => params
            .elements()?
            .into_iter()
            .map(|p| {
                if p.name != "param" {
                    return Err(invalid(format!("<params> cannot hold <{}>", p.name)));
                }
                parse_value(p.only("value")?, 1, max_depth)
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Call {
        method: method.to_owned(),
        params,
    })
}

/// A `<value>` as JSON; `depth` is its nesting level, from 1.
fn parse_value(value: &Element, depth: usize, max_depth: usize) -> Result<Value, Error> {
    if depth > max_depth {
        return Err(invalid(format!(
            "the call nests deeper than {max_depth} levels of values"
        )));
    }
    if !value.children.iter().any(|c| matches!(c, Node::Element(_))) {
        return Ok(Value::String(value.text()?.to_owned()));
    }
    let typed = match value.elements().as_deref() {
        Ok([one]) => *one,
        _ => return Err(invalid("<value> must hold one typed element or only text")),
    };
    let bad = |what: &str| invalid(format!("<{}> {what}", typed.name));
    Ok(match typed.name.as_str() {
        "int" | "i4" | "i8" => {
            let n: i64 = typed
                .text()?
                .trim()
                .parse()
                .map_err(|_| bad("is not a 64-bit integer"))?;
            Value::from(n)
        }
        "boolean" => match typed.text()?.trim() {
            "1" | "true" => Value::Bool(true),
            "0" | "false" => Value::Bool(false),
            _ => return Err(bad("must be 0 or 1")),
        },
        "double" => {
            let f: f64 = typed
                .text()?
                .trim()
                .parse()
                .map_err(|_| bad("is not a number"))?;
            Value::Number(Number::from_f64(f).ok_or_else(|| bad("must be finite"))?)
        }
        "string" => Value::String(typed.text()?.to_owned()),
        "base64" => {
            let b64: String = typed
                .text()?
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            if !is_base64(&b64) {
                return Err(bad("is not base64"));
            }
            Value::String(b64)
        }
        "dateTime.iso8601" => {
            let text = typed.text()?.trim();
            if text.is_empty() {
                return Err(bad("is empty"));
            }
            Value::String(text.to_owned())
        }
        "nil" | "ex:nil" => {
            if !typed.text()?.trim().is_empty() {
                return Err(bad("must be empty"));
            }
            Value::Null
        }
        "array" => Value::Array(
            typed
                .only("data")?
                .elements()?
                .into_iter()
                .map(|v| {
                    if v.name != "value" {
                        return Err(invalid(format!("<data> cannot hold <{}>", v.name)));
                    }
                    parse_value(v, depth + 1, max_depth)
                })
                .collect::<Result<_, _>>()?,
        ),
        "struct" => {
            let mut map = Map::new();
            for member in typed.elements()? {
                if member.name != "member" {
                    return Err(invalid(format!("<struct> cannot hold <{}>", member.name)));
                }
                let (mut name, mut value) = (None, None);
                for part in member.elements()? {
                    let slot = match part.name.as_str() {
                        "name" => &mut name,
                        "value" => &mut value,
                        _ => return Err(invalid("<member> holds one <name> and one <value>")),
                    };
                    if slot.replace(part).is_some() {
                        return Err(invalid("<member> holds one <name> and one <value>"));
                    }
                }
                let (Some(name), Some(value)) = (name, value) else {
                    return Err(invalid("<member> holds one <name> and one <value>"));
                };
                map.insert(
                    name.text()?.to_owned(),
                    parse_value(value, depth + 1, max_depth)?,
                );
            }
            Value::Object(map)
        }
        other => return Err(invalid(format!("unknown XML-RPC type <{other}>"))),
    })
}

/// Standard base64 with padding, whitespace already removed.
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    s.len().is_multiple_of(4)
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}
#[cfg(test)]
pub(super) mod tests {
    const MAX_DEPTH: usize = super::super::DEFAULT_MAX_DEPTH;
    use super::*;
    use serde_json::json;

    /// A `methodCall` document for `method` with each of `params` (`<value>` XML) as a param.
    pub(in crate::rpc) fn call_xml(method: &str, params: &[&str]) -> String {
        let params: String = params
            .iter()
            .map(|p| format!("<param>{p}</param>"))
            .collect();
        format!(
            "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName>\
             <params>{params}</params></methodCall>"
        )
    }

    fn one(value_xml: &str) -> Result<Value, Error> {
        parse_call(call_xml("m.f", &[value_xml]).as_bytes(), MAX_DEPTH).map(|c| c.params[0].clone())
    }

    #[test]
    fn every_type_parses_to_json() {
        let cases: &[(&str, Value)] = &[
            ("<value><int>42</int></value>", json!(42)),
            ("<value><i4>-7</i4></value>", json!(-7)),
            (
                "<value><i8>9000000000</i8></value>",
                json!(9_000_000_000_i64),
            ),
            ("<value><int> +5 </int></value>", json!(5)),
            ("<value><double>2.5</double></value>", json!(2.5)),
            ("<value><double>-1e3</double></value>", json!(-1000.0)),
            ("<value><boolean>1</boolean></value>", json!(true)),
            ("<value><boolean>0</boolean></value>", json!(false)),
            ("<value><string>a b</string></value>", json!("a b")),
            ("<value><string/></value>", json!("")),
            ("<value>  bare text </value>", json!("  bare text ")),
            ("<value></value>", json!("")),
            ("<value/>", json!("")),
            ("<value><nil/></value>", json!(null)),
            ("<value><ex:nil/></value>", json!(null)),
            (
                "<value><base64>aGVs\nbG8=</base64></value>",
                json!("aGVsbG8="),
            ),
            (
                "<value><dateTime.iso8601>20260101T12:00:00</dateTime.iso8601></value>",
                json!("20260101T12:00:00"),
            ),
            (
                "<value><array><data><value><int>1</int></value><value>x</value></data></array></value>",
                json!([1, "x"]),
            ),
            ("<value><array><data/></array></value>", json!([])),
            (
                "<value><struct>\n <member><name>a</name><value><nil/></value></member>\n \
                 <member><value><boolean>1</boolean></value><name>b</name></member></struct></value>",
                json!({"a": null, "b": true}),
            ),
            ("<value><struct/></value>", json!({})),
        ];
        for (xml, want) in cases {
            assert_eq!(&one(xml).unwrap(), want, "{xml}");
        }
    }

    #[test]
    fn entities_and_character_references_resolve() {
        assert_eq!(
            one("<value><string>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#x1F600;</string></value>")
                .unwrap(),
            json!("&<>\"'AB\u{1F600}")
        );
        assert_eq!(
            one("<value><![CDATA[<b>&amp;</b>]]></value>").unwrap(),
            json!("<b>&amp;</b>")
        );
        assert_eq!(one("<value>a\r\nb\rc</value>").unwrap(), json!("a\nb\nc"));
        assert_eq!(one("<value>a&#13;b</value>").unwrap(), json!("a\rb"));
    }

    #[test]
    fn calls_parse_with_and_without_params() {
        let c = parse_call(
            b"<methodCall><methodName> math.add </methodName></methodCall>",
            MAX_DEPTH,
        )
        .unwrap();
        assert_eq!(c.method, "math.add");
        assert!(c.params.is_empty());
        let c = parse_call(
            call_xml(
                "math.add",
                &["<value><int>7</int></value>", "<value><i4>3</i4></value>"],
            )
            .as_bytes(),
            MAX_DEPTH,
        )
        .unwrap();
        assert_eq!(c.params, vec![json!(7), json!(3)]);
        let c = parse_call(
            b"<methodCall><methodName>x.y</methodName><params/></methodCall>",
            MAX_DEPTH,
        )
        .unwrap();
        assert!(c.params.is_empty());
    }

    fn code(body: &str) -> i64 {
        parse_call(body.as_bytes(), MAX_DEPTH).unwrap_err().code()
    }

    #[test]
    fn malformed_calls_are_invalid_requests() {
        for body in [
            "<methodCall></methodCall>",
            "<methodCall><methodName></methodName></methodCall>",
            "<methodCall><methodName>a.b</methodName><methodName>a.b</methodName></methodCall>",
            "<methodCall><methodName><b>a</b></methodName></methodCall>",
            "<methodResponse/>",
            "<methodCall><methodName>a.b</methodName><params><value/></params></methodCall>",
            "<methodCall><methodName>a.b</methodName><params><param/></params></methodCall>",
            "<methodCall><methodName>a.b</methodName>stray</methodCall>",
            "<methodCall><methodName>a.b</methodName><bogus/></methodCall>",
        ] {
            assert_eq!(code(body), -32600, "{body}");
        }
        for value in [
            "<value><int>x</int></value>",
            "<value><int>99999999999999999999</int></value>",
            "<value><boolean>2</boolean></value>",
            "<value><double>NaN</double></value>",
            "<value><double>inf</double></value>",
            "<value><base64>not base64!</base64></value>",
            "<value><float>1</float></value>",
            "<value><int>1</int><int>2</int></value>",
            "<value>text<int>1</int></value>",
            "<value><array><value/></array></value>",
            "<value><struct><member><name>a</name></member></struct></value>",
            "<value><nil>x</nil></value>",
        ] {
            assert_eq!(one(value).unwrap_err().code(), -32600, "{value}");
        }
    }

    #[test]
    fn bad_xml_is_a_parse_error() {
        for body in [
            "",
            "not xml",
            "<methodCall><methodName>a.b</methodName>",
            "<methodCall><methodName>a.b</methodCall>",
            "<methodCall/><methodCall/>",
            "<methodCall a=>x</methodCall>",
            "<methodCall><methodName>a&b</methodName></methodCall>",
            "<methodCall><methodName>&#0;</methodName></methodCall>",
            "<methodCall><methodName>&#1;</methodName></methodCall>",
            "<methodCall><methodName>\u{1}</methodName></methodCall>",
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall/>",
        ] {
            assert_eq!(code(body), -32700, "{body:?}");
        }
        assert_eq!(
            parse_call(b"\xff\xfe<", MAX_DEPTH).unwrap_err().code(),
            -32700
        );
    }

    #[test]
    fn doctype_entities_and_external_entities_are_refused() {
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
             <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\
             <methodCall><methodName>&lol2;</methodName></methodCall>";
        let e = parse_call(laughs.as_bytes(), MAX_DEPTH).unwrap_err();
        assert_eq!(e.code(), -32700);
        assert!(e.message.contains("DOCTYPE"), "{}", e.message);
        let xxe = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
             <methodCall><methodName>a.b</methodName><params><param><value>&xxe;</value></param>\
             </params></methodCall>";
        assert_eq!(code(xxe), -32700);
        let e = one("<value>&foo;</value>").unwrap_err();
        assert_eq!(e.code(), -32700);
        assert!(e.message.contains("&foo;"), "{}", e.message);
    }

    #[test]
    fn nesting_is_limited() {
        let nest = |n: usize| {
            format!(
                "{}<value><int>1</int></value>{}",
                "<value><array><data>".repeat(n - 1),
                "</data></array></value>".repeat(n - 1)
            )
        };
        assert!(one(&nest(MAX_DEPTH)).is_ok());
        assert_eq!(one(&nest(MAX_DEPTH + 1)).unwrap_err().code(), -32600);
        let structs = |n: usize| {
            format!(
                "{}<value/>{}",
                "<value><struct><member><name>a</name>".repeat(n - 1),
                "</member></struct></value>".repeat(n - 1)
            )
        };
        assert!(one(&structs(MAX_DEPTH)).is_ok());
        assert_eq!(one(&structs(MAX_DEPTH + 1)).unwrap_err().code(), -32600);
        // Far deeper than the limit: refused while reading, before any tree is built.
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        assert_eq!(
            parse_call(call_xml("m.f", &[&deep]).as_bytes(), MAX_DEPTH)
                .unwrap_err()
                .code(),
            -32600
        );
    }
}
