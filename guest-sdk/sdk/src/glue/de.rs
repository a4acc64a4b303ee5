//! Decoding one parameter from its JSON text: a serde `Deserializer` over the text, which
//! reads JSON itself and hands serde_json only what only serde_json knows.
//!
//! A guest's parameters (numbers, strings, `Option`s, structs, sequences, maps, enums, `Value`)
//! never instantiate serde_json's deserializer, nor its error messages, which format floats and
//! quote strings with `Debug`: that was most of what made a small guest large (docs/GUESTS.md,
//! *Size*). Scalars are read by `json::token`; arrays and objects are split by
//! `json::split_array`/`split_object` and each element decoded by another `Param`, one level
//! deeper (at most 128, serde_json's limit). serde_json still decodes `RawValue`, 128-bit
//! integers and bytes.
//!
//! What it hands a visitor, and the messages it fails with, are serde_json's (tests compare
//! them over many types and values, and over random documents): a number is `u64` when it is a
//! non-negative integer that fits, `i64` when a negative one that fits, `f64` otherwise (parsed
//! exactly, and "number out of range" past `f64::MAX`); `null` is "null", not "unit value"; a
//! struct may be an object or an array of its fields; map keys may hold numbers and booleans.
//! The differences: a string of the wrong type is quoted the way JSON quotes, where serde_json
//! used Rust's `Debug` (they differ only for unprintable characters); malformed JSON (which the
//! host never passes) is `not valid JSON: <what> at byte <n>`; and where serde_json says only
//! "expected value" for a malformed enum, this says what it got.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Expected, Unexpected, Visitor};

use super::json::{self, Number, Token};

/// Why a parameter did not decode: the message, as serde_json would word it (without its
/// position, which means nothing in one parameter's slice).
#[derive(Debug)]
pub struct DeError(pub String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }

    // serde's defaults format `Unexpected` with `Display`, whose float and string arms pull in
    // `core::fmt`'s float formatting and Unicode tables; these write it by hand.
    #[cold]
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self(mismatch("invalid type: ", &describe(unexp), exp))
    }

    #[cold]
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Self(mismatch("invalid value: ", &describe(unexp), exp))
    }
}

impl DeError {
    /// serde_json's message for `e`, without its " at line L column C" suffix.
    #[cold]
    fn json(e: &serde_json::Error) -> Self {
        let mut text = e.to_string();
        if e.line() != 0 {
            let mut suffix = String::from(" at line ");
            json::push_u64(&mut suffix, e.line() as u64);
            suffix.push_str(" column ");
            json::push_u64(&mut suffix, e.column() as u64);
            if text.ends_with(&suffix) {
                text.truncate(text.len() - suffix.len());
            }
        }
        Self(text)
    }

    /// The value is of the wrong type, described as serde_json describes it.
    #[cold]
    fn wrong_type(token: &Token<'_>, text: &str, exp: &dyn Expected) -> Self {
        let what = match token {
            Token::Null => String::from("null"),
            Token::Bool(b) => String::from(if *b {
                "boolean `true`"
            } else {
                "boolean `false`"
            }),
            Token::Number(n) => match json::number::<false>(n) {
                Some(Number::U64(n)) => describe(Unexpected::Unsigned(n)),
                Some(Number::I64(n)) => describe(Unexpected::Signed(n)),
                Some(Number::F64(n)) => describe(Unexpected::Float(n)),
                None => return Self(String::from("number out of range")),
            },
            Token::Str(contents) => match json::unescape(contents) {
                Some(s) => describe(Unexpected::Str(&s)),
                None => return Self::not_json(),
            },
            Token::Nested if text.starts_with('[') => String::from("sequence"),
            Token::Nested => String::from("map"),
        };
        Self(mismatch("invalid type: ", &what, exp))
    }

    #[cold]
    fn not_json() -> Self {
        Self(String::from("not valid JSON"))
    }

    /// An array or object that does not split: what is wrong, and where in the value.
    #[cold]
    fn malformed(e: json::Malformed) -> Self {
        let mut message = String::from("not valid JSON: ");
        message.push_str(e.what);
        message.push_str(" at byte ");
        json::push_u64(&mut message, e.at as u64);
        Self(message)
    }
}

fn quoted(before: &str, text: &str, after: &str) -> String {
    let mut s = String::with_capacity(before.len() + text.len() + after.len());
    s.push_str(before);
    s.push_str(text);
    s.push_str(after);
    s
}

/// "invalid type: X, expected Y".
fn mismatch(kind: &str, what: &str, exp: &dyn Expected) -> String {
    let mut s = quoted(kind, what, ", expected ");
    // `Expected` is only `Display`: this is the one formatting call, and it formats no numbers.
    s.push_str(&ExpectedText(exp).to_string());
    s
}

struct ExpectedText<'a>(&'a dyn Expected);

impl fmt::Display for ExpectedText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// serde's `Unexpected` as serde_json's errors word it, without `core::fmt`.
fn describe(unexp: Unexpected<'_>) -> String {
    let mut s = String::new();
    match unexp {
        Unexpected::Bool(b) => s.push_str(if b {
            "boolean `true`"
        } else {
            "boolean `false`"
        }),
        Unexpected::Unsigned(n) => {
            s.push_str("integer `");
            json::push_u64(&mut s, n);
            s.push('`');
        }
        Unexpected::Signed(n) => {
            s.push_str("integer `");
            if n < 0 {
                s.push('-');
            }
            json::push_u64(&mut s, n.unsigned_abs());
            s.push('`');
        }
        Unexpected::Float(f) => {
            s.push_str("floating point `");
            s.push_str(zmij::Buffer::new().format(f));
            s.push('`');
        }
        Unexpected::Char(c) => {
            s.push_str("character `");
            s.push(c);
            s.push('`');
        }
        Unexpected::Str(text) => {
            // serde quotes with `Debug`; JSON's quoting says the same for all but exotic
            // characters, without Unicode tables.
            s.push_str("string ");
            let mut quoted = Vec::new();
            json::write_str(&mut quoted, text);
            s.push_str(std::str::from_utf8(&quoted).unwrap_or_default());
        }
        Unexpected::Bytes(_) => s.push_str("byte array"),
        Unexpected::Unit => s.push_str("null"),
        Unexpected::Option => s.push_str("Option value"),
        Unexpected::NewtypeStruct => s.push_str("newtype struct"),
        Unexpected::Seq => s.push_str("sequence"),
        Unexpected::Map => s.push_str("map"),
        Unexpected::Enum => s.push_str("enum"),
        Unexpected::UnitVariant => s.push_str("unit variant"),
        Unexpected::NewtypeVariant => s.push_str("newtype variant"),
        Unexpected::TupleVariant => s.push_str("tuple variant"),
        Unexpected::StructVariant => s.push_str("struct variant"),
        Unexpected::Other(other) => s.push_str(other),
    }
    s
}

/// serde_json's limit on nesting, kept: deeper input is an error, not a stack overflow.
const MAX_DEPTH: u32 = 128;

/// The deserializer of one parameter's text (no surrounding whitespace), or of one value inside
/// it.
pub struct Param<'de> {
    pub text: &'de str,
    /// How many arrays and objects this value is inside.
    pub depth: u32,
}

impl<'de> Param<'de> {
    /// A parameter's whole text.
    pub fn new(text: &'de str) -> Self {
        Self { text, depth: 0 }
    }

    fn token(&self) -> Result<Token<'de>, DeError> {
        json::token(self.text).ok_or_else(DeError::not_json)
    }

    /// serde_json decodes the whole text: what only it knows (`RawValue`, 128-bit integers,
    /// bytes).
    fn serde_json<V, F>(&self, visitor: V, decode: F) -> Result<V::Value, DeError>
    where
        V: Visitor<'de>,
        F: FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
            V,
        ) -> serde_json::Result<V::Value>,
    {
        let mut de = serde_json::Deserializer::from_str(self.text);
        decode(&mut de, visitor)
            .and_then(|value| de.end().map(|()| value))
            .map_err(|e| DeError::json(&e))
    }

    fn number<V: Visitor<'de>, const SINGLE: bool>(&self, visitor: V) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Number(n) => match json::number::<SINGLE>(n) {
                Some(Number::U64(n)) => visitor.visit_u64(n),
                Some(Number::I64(n)) => visitor.visit_i64(n),
                Some(Number::F64(n)) => visitor.visit_f64(n),
                None => Err(DeError(String::from("number out of range"))),
            },
            token => Err(DeError::wrong_type(&token, self.text, &visitor)),
        }
    }

    fn string<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Str(contents) => match json::unescape(contents) {
                Some(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
                Some(Cow::Owned(s)) => visitor.visit_string(s),
                None => Err(DeError::not_json()),
            },
            token => Err(DeError::wrong_type(&token, self.text, &visitor)),
        }
    }

    /// The value of an element or member, one level deeper.
    fn inner(&self, text: &'de str) -> Result<Param<'de>, DeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DeError(String::from("recursion limit exceeded")));
        }
        Ok(Param {
            text,
            depth: self.depth + 1,
        })
    }

    /// An array's elements to `visitor.visit_seq`; all of them must be taken.
    fn seq<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        let items = json::split_array(self.text).map_err(DeError::malformed)?;
        let mut access = Seq {
            parent: self,
            items: items.into_iter(),
        };
        let value = visitor.visit_seq(&mut access)?;
        match access.items.len() {
            0 => Ok(value),
            _ => Err(DeError(String::from("trailing characters"))),
        }
    }

    /// An object's members to `visitor.visit_map`; all of them must be taken.
    fn map<V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value, DeError> {
        let members = json::split_object(self.text).map_err(DeError::malformed)?;
        let mut access = Map {
            parent: self,
            members: members.into_iter(),
            value: None,
        };
        let value = visitor.visit_map(&mut access)?;
        match access.members.len() {
            0 => Ok(value),
            _ => Err(DeError(String::from("trailing characters"))),
        }
    }

    /// An array (or, `objects_too`, an object) to the visitor; anything else is the wrong type.
    fn nested<V: Visitor<'de>>(
        &self,
        visitor: V,
        arrays: bool,
        objects: bool,
    ) -> Result<V::Value, DeError> {
        let token = self.token()?;
        match self.text.as_bytes().first() {
            Some(b'[') if arrays => self.seq(visitor),
            Some(b'{') if objects => self.map(visitor),
            _ => Err(DeError::wrong_type(&token, self.text, &visitor)),
        }
    }
}

/// The elements of an array, each decoded by a [`Param`].
struct Seq<'a, 'de> {
    parent: &'a Param<'de>,
    items: std::vec::IntoIter<&'de str>,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(text) => seed.deserialize(self.parent.inner(text)?).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The members of an object: keys by [`Key`], values by [`Param`].
struct Map<'a, 'de> {
    parent: &'a Param<'de>,
    members: std::vec::IntoIter<(Cow<'de, str>, &'de str)>,
    /// The value of the member whose key was just taken.
    value: Option<&'de str>,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.members.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(Key(key)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let text = self.value.take().ok_or_else(DeError::not_json)?;
        seed.deserialize(self.parent.inner(text)?)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// An enum given as an object of one member, `{"Variant": value}`.
struct Variant<'a, 'de> {
    parent: &'a Param<'de>,
    name: Cow<'de, str>,
    value: &'de str,
}

impl<'a, 'de> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = DeError;
    type Variant = Param<'de>;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Param<'de>), DeError> {
        let variant = seed.deserialize(Key(self.name))?;
        Ok((variant, self.parent.inner(self.value)?))
    }
}

impl<'de> de::VariantAccess<'de> for Param<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.nested(visitor, true, false)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(visitor, true, true)
    }
}

/// An enum given as a string: a unit variant.
struct UnitVariant<'de>(Cow<'de, str>);

impl<'de> de::EnumAccess<'de> for UnitVariant<'de> {
    type Error = DeError;
    type Variant = UnitOnly;

    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, UnitOnly), DeError> {
        Ok((seed.deserialize(Key(self.0))?, UnitOnly))
    }
}

/// The variant of an enum given as a string: only a unit variant fits.
struct UnitOnly;

impl<'de> de::VariantAccess<'de> for UnitOnly {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        _seed: T,
    ) -> Result<T::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"newtype variant",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"tuple variant",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"struct variant",
        ))
    }
}

/// An object key (already unescaped). Like serde_json's, it reads numbers and booleans out of
/// the string for maps keyed by them (`{"1": ...}` for a `BTreeMap<u32, _>`).
struct Key<'de>(Cow<'de, str>);

impl<'de> Key<'de> {
    fn visit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }

    fn number<V: Visitor<'de>, const SINGLE: bool>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(Token::Number(n)) = json::token(&self.0) else {
            return Err(DeError(String::from(
                "invalid value: expected key to be a number in quotes",
            )));
        };
        match json::number::<SINGLE>(n) {
            Some(Number::U64(n)) => visitor.visit_u64(n),
            Some(Number::I64(n)) => visitor.visit_i64(n),
            Some(Number::F64(n)) => visitor.visit_f64(n),
            None => Err(DeError(String::from("number out of range"))),
        }
    }
}

macro_rules! key_numbers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.number::<V, false>(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Key<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.visit(visitor)
    }

    key_numbers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
                 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number::<V, true>(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &*self.0 {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => Err(de::Error::invalid_type(Unexpected::Str(&self.0), &visitor)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_enum(UnitVariant(self.0))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map
        struct identifier ignored_any
    }
}

macro_rules! numbers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.number::<V, false>(visitor)
        }
    )*};
}

macro_rules! by_serde_json {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.serde_json(visitor, |de, v| de::Deserializer::$method(de, v))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Param<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Null => visitor.visit_unit(),
            Token::Bool(b) => visitor.visit_bool(b),
            Token::Number(_) => self.number::<V, false>(visitor),
            Token::Str(_) => self.string(visitor),
            Token::Nested => self.nested(visitor, true, true),
        }
    }

    numbers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
             deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
             deserialize_f64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.number::<V, true>(visitor)
    }

    by_serde_json!(deserialize_i128 deserialize_u128 deserialize_bytes deserialize_byte_buf);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Bool(b) => visitor.visit_bool(b),
            token => Err(DeError::wrong_type(&token, self.text, &visitor)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.string(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.string(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Null => visitor.visit_unit(),
            token => Err(DeError::wrong_type(&token, self.text, &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // serde_json's `RawValue` is a newtype with a private name only serde_json answers.
        if name.starts_with("$serde_json::") {
            return self.serde_json(visitor, |de, v| {
                de::Deserializer::deserialize_newtype_struct(de, name, v)
            });
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.nested(visitor, true, false)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(visitor, true, false)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(visitor, true, false)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.nested(visitor, false, true)
    }

    /// A struct is an object, or (as serde_json allows) an array of its fields in order.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(visitor, true, true)
    }

    /// A unit variant is a string; any other variant an object of one member.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Str(contents) => {
                let name = json::unescape(contents).ok_or_else(DeError::not_json)?;
                visitor.visit_enum(UnitVariant(name))
            }
            Token::Nested if self.text.starts_with('{') => {
                let members = json::split_object(self.text).map_err(DeError::malformed)?;
                let single = members.len() == 1;
                // The first key names the variant (so an unknown one is reported as such, as
                // serde_json does), and there must be no other.
                let Some((name, value)) = members.into_iter().next() else {
                    return Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"map with a single key",
                    ));
                };
                let value = visitor.visit_enum(Variant {
                    parent: &self,
                    name,
                    value,
                })?;
                if !single {
                    return Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"map with a single key",
                    ));
                }
                Ok(value)
            }
            token => Err(DeError::wrong_type(&token, self.text, &visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.token()? {
            Token::Nested => self
                .nested(de::IgnoredAny, true, true)
                .and_then(|_| visitor.visit_unit()),
            _ => visitor.visit_unit(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use super::*;

    fn ours<T: DeserializeOwned>(text: &str) -> Result<T, String> {
        T::deserialize(Param::new(text)).map_err(|e| e.0)
    }

    fn theirs<T: DeserializeOwned>(text: &str) -> Result<T, String> {
        serde_json::from_str(text).map_err(|e| DeError::json(&e).0)
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i32,
        y: Option<f64>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle { r: f64 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Meters(f64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        x: i64,
        #[serde(default)]
        y: Vec<i64>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapper {
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Tagged {
        A { x: i64 },
        B,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(i64),
        Text(String),
    }

    /// Every value below, as every type below, decodes as serde_json decodes it: the same value,
    /// or an error with the same message (but for the quoting of wrongly typed numbers).
    #[test]
    fn agrees_with_serde_json() {
        let texts = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-1",
            "255",
            "256",
            "-129",
            "1.5",
            "-2.5e-3",
            "1e3",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "4294967296",
            "1e39",
            "-1e400",
            "3.4028235e38",
            "\"\"",
            "\"a\"",
            "\"é\"",
            "\"\\u00e9\\n\"",
            "\"ab\"",
            "\"Dot\"",
            "\"Circle\"",
            "[]",
            "[1, 2]",
            "[1.5, null]",
            "{}",
            r#"{"x": 1}"#,
            r#"{"x": 1, "y": 2.5}"#,
            r#"{"Circle": {"r": 1}}"#,
            "[[1]]",
        ];
        macro_rules! check {
            ($($ty:ty),*) => {$(
                for text in texts {
                    let (a, b) = (ours::<$ty>(text), theirs::<$ty>(text));
                    let same = match (&a, &b) {
                        (Ok(a), Ok(b)) => format!("{a:?}") == format!("{b:?}"),
                        // Where serde_json says only "expected value" (an enum given neither a
                        // string nor an object of one member), ours says what it got.
                        (Err(a), Err(b)) => a == b || b == "expected value",
                        _ => false,
                    };
                    assert!(same, "{} from {text}: ours {a:?}, serde_json's {b:?}", stringify!($ty));
                }
            )*};
        }
        check!(
            i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, usize, isize, f32, f64, bool, char,
            String, (), Option<i64>, Option<Option<bool>>, Option<String>, Vec<f64>,
            Vec<Option<u8>>, (u8, String), BTreeMap<String, i64>, Value, Point, Option<Point>,
            Shape, Meters, Either, serde_json::Map<String, Value>, BTreeMap<u32, i64>,
            BTreeMap<String, Value>, Vec<Vec<u8>>, Vec<Option<Point>>,
            (f64, f64), [u8; 2], Strict, Wrapper, Vec<Shape>, Tagged
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            ours::<i64>("\"a\"").unwrap_err(),
            "invalid type: string \"a\", expected i64"
        );
        assert_eq!(
            ours::<i64>("null").unwrap_err(),
            "invalid type: null, expected i64"
        );
        assert_eq!(
            ours::<i64>("1e3").unwrap_err(),
            "invalid type: floating point `1000.0`, expected i64"
        );
        assert_eq!(
            ours::<u8>("256").unwrap_err(),
            "invalid value: integer `256`, expected u8"
        );
        assert_eq!(
            ours::<Either>("1.5").unwrap_err(),
            "data did not match any variant of untagged enum Either"
        );
        assert_eq!(
            ours::<Point>("true").unwrap_err(),
            "invalid type: boolean `true`, expected struct Point"
        );
        assert_eq!(
            ours::<Point>("[1]").unwrap_err(),
            "invalid length 1, expected struct Point with 2 elements"
        );
        assert_eq!(ours::<i64>("01").unwrap_err(), "not valid JSON");
        assert_eq!(ours::<String>("\"\\x\"").unwrap_err(), "not valid JSON");
        assert_eq!(
            ours::<Point>(r#"{"x": 1"#).unwrap_err(),
            "not valid JSON: unclosed object at byte 7"
        );
    }

    #[test]
    fn keys_hold_numbers_and_booleans() {
        let map: BTreeMap<bool, u8> = ours(r#"{"true": 1, "false": 0}"#).unwrap();
        assert_eq!(map, BTreeMap::from([(true, 1), (false, 0)]));
        // serde_json quotes an empty string here (it has read the first character already).
        assert_eq!(
            ours::<BTreeMap<bool, u8>>(r#"{"x": 1}"#).unwrap_err(),
            "invalid type: string \"x\", expected a boolean"
        );
        let map: BTreeMap<i8, f32> = ours(r#"{"-1": 0.5}"#).unwrap();
        assert_eq!(map, BTreeMap::from([(-1, 0.5)]));
    }

    #[test]
    fn nesting_is_limited_as_in_serde_json() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            ours::<Value>(&deep).unwrap_err(),
            "recursion limit exceeded"
        );
        let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(ours::<Value>(&fine).is_ok());
    }

    #[test]
    fn raw_values_are_serde_jsons() {
        let raw: Box<serde_json::value::RawValue> = ours(r#"{"a": [1, 2.50]}"#).unwrap();
        assert_eq!(raw.get(), r#"{"a": [1, 2.50]}"#);
        let raw: Box<serde_json::value::RawValue> = ours("2.50").unwrap();
        assert_eq!(raw.get(), "2.50");
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..5)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON document decodes to the same `Value` through ours as through serde_json.
        #[test]
        fn documents_agree_with_serde_json(value in any_json(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            prop_assert_eq!(ours::<Value>(&text).unwrap(), value);
        }

        #[test]
        fn strings_agree_with_serde_json(s in any::<String>()) {
            let text = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(ours::<String>(&text).unwrap(), s.clone());
            prop_assert_eq!(ours::<Value>(&text).unwrap(), Value::String(s));
        }

        #[test]
        fn floats_agree_with_serde_json(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
            for text in [format!("{x:?}"), format!("{x:e}"), format!("{x:.17e}")] {
                prop_assert_eq!(ours::<f64>(&text).map(f64::to_bits), theirs::<f64>(&text).map(f64::to_bits));
                prop_assert_eq!(ours::<f32>(&text).map(f32::to_bits), theirs::<f32>(&text).map(f32::to_bits));
            }
        }
    }
}
