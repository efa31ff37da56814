//! The crate's one `unsafe` module: header values built from bytes httparse has already
//! validated, without `http` validating them a second time (hyper's `role.rs` does the same).
//!
//! Why: `HeaderValue::from_maybe_shared` re-checks every byte httparse just checked, about 250
//! instructions of a plaintext request's ~7,000 (`loadtest/RESULTS.md`, issue #19).
//!
//! Why it is sound: httparse accepts a field value only if every byte is HTAB, SP, a visible
//! ASCII character or obs-text (0x80–0xFF), RFC 9110 §5.5; `HeaderValue` requires each byte to
//! be HTAB or at least 0x20 and not DEL, a superset. The value ranges are recorded from
//! httparse's output over one buffer ([`Validated::record`]), and read back only from a
//! `Bytes` that starts at that same address and is at least as long ([`Validated::fields`]
//! checks both), which the parser guarantees by splitting the very buffer it parsed, untouched
//! in between. `fuzz/fuzz_targets/trusted.rs` holds every value built here against the checked
//! constructor; in debug builds (`cargo test`) `http` itself re-checks and panics on a bad one.
#![allow(unsafe_code)]

use std::ops::Range;

use bytes::Bytes;
use http::HeaderValue;

/// Byte ranges of one header within the head buffer.
#[derive(Clone, Debug)]
struct Field {
    name: Range<usize>,
    value: Range<usize>,
}

/// Where httparse found each header of the last head it parsed, kept per connection so that
/// recording allocates nothing after warm-up.
#[derive(Debug, Default)]
pub(crate) struct Validated {
    fields: Vec<Field>,
    /// Address and length of the buffer the ranges are into.
    start: usize,
    len: usize,
}

impl Validated {
    /// Records the headers httparse parsed out of `buf` (each a sub-slice of it).
    pub(crate) fn record(&mut self, buf: &[u8], headers: &[httparse::Header<'_>]) {
        let offset = |s: &[u8]| s.as_ptr() as usize - buf.as_ptr() as usize;
        self.start = buf.as_ptr() as usize;
        self.len = buf.len();
        self.fields.clear();
        self.fields.extend(headers.iter().map(|h| Field {
            name: offset(h.name.as_bytes())..offset(h.name.as_bytes()) + h.name.len(),
            value: offset(h.value)..offset(h.value) + h.value.len(),
        }));
    }

    /// Room for this many headers without allocating.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.fields.capacity()
    }

    /// How many headers were recorded.
    pub(crate) fn count(&self) -> usize {
        self.fields.len()
    }

    /// Each recorded header of `head` as its name's and value's bytes, nothing built: what an
    /// inline handler's [`HeadView`](crate::HeadView) reads.
    pub(crate) fn raw_fields<'h>(
        &'h self,
        head: &'h [u8],
    ) -> impl Iterator<Item = (&'h [u8], &'h [u8])> + 'h {
        self.fields
            .iter()
            .map(move |f| (&head[f.name.clone()], &head[f.value.clone()]))
    }

    /// Each recorded header of `head`: the name's bytes, the value, and where the value sits.
    /// `head` must be (the front of) the buffer [`Validated::record`] was given, unchanged.
    ///
    /// # Panics
    ///
    /// When `head` does not start where that buffer did or is too short for the recorded
    /// headers: the values would not be the bytes httparse checked.
    pub(crate) fn fields<'h>(
        &'h self,
        head: &'h Bytes,
    ) -> impl Iterator<Item = (&'h [u8], HeaderValue, Range<usize>)> + 'h {
        let end = self.fields.last().map_or(0, |f| f.value.end);
        assert!(
            head.as_ptr() as usize == self.start && end <= head.len() && end <= self.len,
            "header values are read back from the buffer httparse checked"
        );
        self.fields.iter().map(move |f| {
            // SAFETY: `f.value` is the range httparse returned as this header's value in the
            // buffer recorded above; `head` starts at that buffer's address (asserted above),
            // covers the range, and the parser does not write to the buffer between parsing
            // and building. httparse admits only HTAB, SP, VCHAR and obs-text in a value, all
            // of which `HeaderValue` admits (module docs).
            let value =
                unsafe { HeaderValue::from_maybe_shared_unchecked(head.slice(f.value.clone())) };
            (&head[f.name.clone()], value, f.value.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::HeaderValue;

    use super::Validated;

    fn record(head: &[u8]) -> (Validated, Bytes) {
        let bytes = Bytes::copy_from_slice(head);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut request = httparse::Request::new(&mut headers);
        assert!(request.parse(&bytes).unwrap().is_complete());
        let mut validated = Validated::default();
        validated.record(&bytes, request.headers);
        (validated, bytes)
    }

    #[test]
    fn values_are_the_bytes_httparse_found_and_pass_the_checked_constructor() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xc3\xa9\t1\r\n\r\n";
        let (validated, bytes) = record(head);
        let fields: Vec<_> = validated.fields(&bytes).collect();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].0, b"Host");
        assert_eq!(fields[0].1, "a");
        assert_eq!(&bytes[fields[1].2.clone()], b"caf\xc3\xa9\t1");
        for (_, value, _) in fields {
            assert_eq!(HeaderValue::from_bytes(value.as_bytes()).unwrap(), value);
        }
    }

    #[test]
    #[should_panic(expected = "the buffer httparse checked")]
    fn another_buffer_is_refused() {
        let (validated, bytes) = record(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let copy = Bytes::copy_from_slice(&bytes);
        validated.fields(&copy).for_each(drop);
    }

    #[test]
    #[should_panic(expected = "the buffer httparse checked")]
    fn a_buffer_cut_short_is_refused() {
        let (validated, bytes) = record(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        validated.fields(&bytes.slice(..10)).for_each(drop);
    }
}
