//! Bencoding (BEP 3): a value type, a canonical encoder (dictionary keys in byte order) and a
//! strict decoder of one value spanning its whole input (no trailing bytes, canonical integers).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    out.extend_from_slice(format!("{}:", k.len()).as_bytes());
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid bencoding at byte {pos}: {what}")]
pub struct DecodeError {
    pub pos: usize,
    pub what: &'static str,
}

/// Decodes one value that must span all of `input`.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder {
        input,
        pos: 0,
        depth: 0,
    };
    let v = d.value()?;
    if d.pos != input.len() {
        return Err(d.err("trailing bytes"));
    }
    Ok(v)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    depth: u32,
}

impl Decoder<'_> {
    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError {
            pos: self.pos,
            what,
        }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(self.err("unexpected end"))
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        self.depth += 1;
        if self.depth > 64 {
            return Err(self.err("nesting too deep"));
        }
        let v = match self.peek()? {
            b'i' => {
                self.pos += 1;
                let end = self.find(b'e')?;
                let s = std::str::from_utf8(&self.input[self.pos..end])
                    .map_err(|_| self.err("bad integer"))?;
                // `str::parse` also takes a leading `+`, which re-encodes without it: the
                // infohash of an accepted info dictionary must be that of its bytes as given.
                if s.is_empty()
                    || s == "-0"
                    || (s.len() > 1 && s.starts_with('0'))
                    || s.starts_with("-0")
                    || !s
                        .trim_start_matches('-')
                        .bytes()
                        .all(|c| c.is_ascii_digit())
                {
                    return Err(self.err("non-canonical integer"));
                }
                let i = s.parse().map_err(|_| self.err("bad integer"))?;
                self.pos = end + 1;
                Value::Int(i)
            }
            b'l' => {
                self.pos += 1;
                let mut l = Vec::new();
                while self.peek()? != b'e' {
                    l.push(self.value()?);
                }
                self.pos += 1;
                Value::List(l)
            }
            b'd' => {
                self.pos += 1;
                let mut d = BTreeMap::new();
                let mut last: Option<Vec<u8>> = None;
                while self.peek()? != b'e' {
                    let k = self.bytes()?;
                    if last.as_ref().is_some_and(|l| *l >= k) {
                        return Err(self.err("dictionary keys not sorted"));
                    }
                    let v = self.value()?;
                    last = Some(k.clone());
                    d.insert(k, v);
                }
                self.pos += 1;
                Value::Dict(d)
            }
            b'0'..=b'9' => Value::Bytes(self.bytes()?),
            _ => return Err(self.err("unexpected byte")),
        };
        self.depth -= 1;
        Ok(v)
    }

    fn find(&self, b: u8) -> Result<usize, DecodeError> {
        self.input[self.pos..]
            .iter()
            .position(|&x| x == b)
            .map(|i| self.pos + i)
            .ok_or(self.err("unterminated"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let colon = self.find(b':')?;
        let s = std::str::from_utf8(&self.input[self.pos..colon])
            .map_err(|_| self.err("bad length"))?;
        // As for integers: no `+` (nor anything else `parse` would take).
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(self.err("bad length"));
        }
        if s.len() > 1 && s.starts_with('0') {
            return Err(self.err("non-canonical length"));
        }
        let len: usize = s.parse().map_err(|_| self.err("bad length"))?;
        let start = colon + 1;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.input.len())
            .ok_or(self.err("string past end"))?;
        self.pos = end;
        Ok(self.input[start..end].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical_order() {
        let mut d = BTreeMap::new();
        d.insert(b"z".to_vec(), Value::Int(-3));
        d.insert(
            b"a".to_vec(),
            Value::List(vec![Value::str("x"), Value::Int(0)]),
        );
        let v = Value::Dict(d);
        let enc = v.encode();
        assert_eq!(enc, b"d1:al1:xi0ee1:zi-3ee");
        assert_eq!(decode(&enc).unwrap(), v);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"i01e"[..],
            b"d1:bi1e1:ai1ee",
            b"5:ab",
            b"i1ex",
            b"",
            b"-1:",
            b"i+1e",
            b"i-+1e",
            b"+1:a",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
