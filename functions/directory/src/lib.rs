//! `directory`: a telephone directory search over a small built-in table.
//!
//! The classic XML-RPC demo function, with optional parameters: every field given must match,
//! fields left out match anything.

use fnhost_guest::export;
use serde::{Deserialize, Serialize};

/// One entry of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub number: String,
    pub last_name: String,
    pub first_name: String,
}

/// The directory: (number, last name, first name).
const PEOPLE: &[(&str, &str, &str)] = &[
    ("555-0101", "Smith", "John"),
    ("555-0102", "Smith", "Mary"),
    ("555-0103", "Jones", "David"),
    ("555-0104", "Garcia", "Maria"),
    ("555-0105", "Nguyen", "Linh"),
    ("555-0106", "Okafor", "Chidi"),
    ("555-0107", "Kowalski", "Anna"),
    ("555-0108", "Tanaka", "Hiro"),
];

/// Finds people in the directory.
///
/// Returns every person matching all the fields given; a field left out (or null) matches
/// anyone, so no params at all returns the whole directory. Matching is exact and
/// case-sensitive: "Smith" finds the Smiths, "smith" finds no one.
#[export]
pub fn search(
    number: Option<String>,
    last_name: Option<String>,
    first_name: Option<String>,
) -> Vec<Person> {
    let matches =
        |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
    PEOPLE
        .iter()
        .filter(|(n, l, f)| {
            matches(&number, n) && matches(&last_name, l) && matches(&first_name, f)
        })
        .map(|&(n, l, f)| Person {
            number: n.to_owned(),
            last_name: l.to_owned(),
            first_name: f.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn no_criteria_returns_everyone() {
        assert_eq!(search(None, None, None).len(), PEOPLE.len());
    }

    #[test]
    fn criteria_combine() {
        let smiths = search(None, s("Smith"), None);
        assert_eq!(
            smiths
                .iter()
                .map(|p| p.first_name.as_str())
                .collect::<Vec<_>>(),
            ["John", "Mary"]
        );
        let mary = search(None, s("Smith"), s("Mary"));
        assert_eq!(
            mary,
            [Person {
                number: "555-0102".into(),
                last_name: "Smith".into(),
                first_name: "Mary".into()
            }]
        );
        assert_eq!(search(s("555-0103"), None, None)[0].last_name, "Jones");
        assert!(search(None, s("smith"), None).is_empty());
        assert!(search(s("555-0101"), s("Jones"), None).is_empty());
    }

    #[test]
    fn rpc_glue_by_name() {
        let output = __fnhost_invoke_search(br#"{"last_name": "Jones"}"#);
        assert_eq!(output[0], 0);
        assert_eq!(
            &output[1..],
            br#"[{"number":"555-0103","last_name":"Jones","first_name":"David"}]"#
        );
    }
}
