use crate::Status;

/// Message headers: an ordered list of `(name, value)` pairs in which a name
/// may appear several times.
///
/// Names are case-sensitive, as in NATS; [`Headers::get`] falls back to a
/// case-insensitive match as the host's `header` function does. On the wire
/// (ABI.md section 4) each value is one line, `Name: value\r\n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// Returns an empty set of headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Reports whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the number of values (a name with two values counts twice).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns the first value of `name`: an exact match if there is one,
    /// else the first case-insensitive match.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .map(|(_, v)| v.as_str())
    }

    /// Returns every value of `name` in order, matching as [`Headers::get`]
    /// does: the exact name if present, else case-insensitively.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        let exact: Vec<&str> = self
            .entries
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        self.entries
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Adds a value for `name`, after any it already has.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Headers {
        self.entries.push((name.into(), value.into()));
        self
    }

    /// Sets `name` to the single value `value`, replacing the values it had
    /// (exact-case match).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Headers {
        let name = name.into();
        self.entries.retain(|(k, _)| *k != name);
        self.entries.push((name, value.into()));
        self
    }

    /// Removes every value of `name` (exact-case match).
    pub fn remove(&mut self, name: &str) -> &mut Headers {
        self.entries.retain(|(k, _)| k != name);
        self
    }

    /// Iterates over the `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Encodes the headers as ABI.md section 4 describes: `Name: value\r\n`
    /// per value, in order. Empty headers encode to no bytes.
    pub fn encode(&self) -> Vec<u8> {
        let size = self
            .entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size);
        for (k, v) in &self.entries {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Decodes the encoding of ABI.md section 4. The final `\r\n` may be
    /// missing. A line without `": "`, with an empty name, or with a lone CR
    /// or LF is [`Status::InvalidArgument`], as the host would judge it.
    /// Bytes that are not UTF-8 are replaced with U+FFFD.
    pub fn parse(mut b: &[u8]) -> Result<Headers, Status> {
        let mut h = Headers::new();
        while !b.is_empty() {
            let mut line = b;
            let mut next = b.len();
            if let Some(i) = b.iter().position(|&c| c == b'\r' || c == b'\n') {
                if b[i] != b'\r' || b.get(i + 1) != Some(&b'\n') {
                    return Err(Status::InvalidArgument);
                }
                line = &b[..i];
                next = i + 2;
            }
            let colon = match line.windows(2).position(|w| w == b": ") {
                Some(c) if c > 0 => c,
                _ => return Err(Status::InvalidArgument),
            };
            h.entries.push((
                String::from_utf8_lossy(&line[..colon]).into_owned(),
                String::from_utf8_lossy(&line[colon + 2..]).into_owned(),
            ));
            b = &b[next..];
        }
        Ok(h)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Headers {
        Headers {
            entries: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Headers {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.entries
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_keeps_order_and_repeats() {
        let mut h = Headers::new();
        h.append("B", "2")
            .append("A", "x: y")
            .append("B", "3")
            .append("Empty", "");
        let wire = h.encode();
        assert_eq!(wire, b"B: 2\r\nA: x: y\r\nB: 3\r\nEmpty: \r\n".to_vec());
        assert_eq!(Headers::parse(&wire).unwrap(), h);
    }

    #[test]
    fn parse_accepts_missing_final_crlf() {
        let h = Headers::parse(b"A: 1\r\nB: 2").unwrap();
        assert_eq!(h.get("B"), Some("2"));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn parse_rejects_malformed_lines() {
        for bad in [
            &b"A:1"[..],
            b": v",
            b"A: 1\nB: 2",
            b"A: 1\r",
            b"A: 1\rB: 2",
            b"\r\n",
        ] {
            assert_eq!(
                Headers::parse(bad),
                Err(Status::InvalidArgument),
                "{:?}",
                bad
            );
        }
    }

    #[test]
    fn parse_of_nothing_is_empty() {
        assert!(Headers::parse(b"").unwrap().is_empty());
    }

    #[test]
    fn get_prefers_exact_case() {
        let h: Headers = vec![
            ("content-type", "a"),
            ("Content-Type", "b"),
            ("Content-Type", "c"),
        ]
        .into_iter()
        .collect();
        assert_eq!(h.get("Content-Type"), Some("b"));
        assert_eq!(h.get("CONTENT-TYPE"), Some("a"));
        assert_eq!(h.get_all("Content-Type"), vec!["b", "c"]);
        assert_eq!(h.get_all("CONTENT-TYPE"), vec!["a", "b", "c"]);
        assert_eq!(h.get("Missing"), None);
    }

    #[test]
    fn insert_replaces_and_remove_deletes() {
        let mut h = Headers::new();
        h.append("A", "1").append("A", "2").insert("A", "3");
        assert_eq!(h.get_all("A"), vec!["3"]);
        h.remove("A");
        assert!(h.is_empty());
    }
}
