//! The chunk-size line of a chunked body, checked against RFC 9112 §7.1 in one pass:
//!
//! ```text
//! chunk-line = chunk-size *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) CRLF
//! chunk-size = 1*HEXDIG          ext-name = token          ext-val = token / quoted-string
//! ```
//!
//! Extensions carry nothing the engine uses, but a line the grammar refuses is one that some
//! other parser in front of us may read differently (`5;`, `5;bad[=x`, `5 ` are all accepted by
//! common servers): that disagreement is what request smuggling is made of, so anything outside
//! the grammar is malformed. BWS (spaces and tabs) is accepted where the grammar puts it —
//! around `;` and `=` — and nowhere else: not after the size unless an extension follows, not
//! at the end of the line. The check runs as bytes arrive, so a bad line is refused as soon as
//! its first bad byte is buffered, before its CRLF.

/// A chunk-size line: complete with its size and length (CRLF included), or not complete yet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    Complete { size: u64, len: usize },
    Partial,
}

/// Why a chunk-size line is malformed.
pub(crate) type Refused = &'static str;

/// Where in the grammar the parser is.
#[derive(Clone, Copy)]
enum At {
    /// The size's hex digits (the first byte is one).
    Size,
    /// BWS that must be followed by `;` (after the size or a value).
    BeforeSemi,
    /// After `;`: BWS, then an extension name.
    BeforeName,
    Name,
    /// BWS after a name: `=` or `;` follows.
    AfterName,
    /// After `=`: BWS, then a token or a quoted string.
    BeforeValue,
    Token,
    Quoted,
    /// After a backslash inside a quoted string.
    QuotedPair,
    /// After a quoted string's closing quote.
    AfterQuoted,
    /// After CR: only LF may follow.
    Cr,
}

/// Parses the chunk-size line at the front of `buf`; a line longer than `max_len` (CRLF
/// included) is refused once that many bytes are buffered without its end.
pub(crate) fn parse(buf: &[u8], max_len: usize) -> Result<Line, Refused> {
    match buf.first() {
        None => return Ok(Line::Partial),
        Some(&b) if hex_value(b).is_none() => return Err(INVALID_SIZE),
        Some(_) => {}
    }
    let mut size: u64 = 0;
    let mut at = At::Size;
    for (i, &b) in buf.iter().enumerate() {
        if i >= max_len {
            return Err("chunk size line too long");
        }
        at = match (at, hex_value(b)) {
            (At::Size, Some(digit)) => {
                if size >> 60 != 0 {
                    return Err("chunk size too large");
                }
                size = size << 4 | u64::from(digit);
                At::Size
            }
            (At::Cr, _) if b == b'\n' => return Ok(Line::Complete { size, len: i + 1 }),
            (At::Cr, _) => return Err("chunk size line not ended by CRLF"),
            (At::Size, _) => step(at, b).ok_or(INVALID_SIZE)?,
            _ => step(at, b).ok_or(INVALID_EXTENSION)?,
        };
    }
    Ok(Line::Partial)
}

/// The state after byte `b` outside the size's digits and the final LF; `None` when the
/// grammar has no place for it.
fn step(at: At, b: u8) -> Option<At> {
    let bws = b == b' ' || b == b'\t';
    let tchar = TCHAR[usize::from(b)];
    Some(match at {
        At::Size | At::Name | At::Token | At::AfterQuoted if b == b'\r' => At::Cr,
        At::Size | At::Token | At::AfterQuoted | At::BeforeSemi if b == b';' => At::BeforeName,
        At::Size | At::Token | At::AfterQuoted | At::BeforeSemi if bws => At::BeforeSemi,
        At::BeforeName if bws => At::BeforeName,
        At::BeforeName | At::Name if tchar => At::Name,
        At::Name | At::AfterName if b == b';' => At::BeforeName,
        At::Name | At::AfterName if bws => At::AfterName,
        At::Name | At::AfterName if b == b'=' => At::BeforeValue,
        At::BeforeValue if bws => At::BeforeValue,
        At::BeforeValue if b == b'"' => At::Quoted,
        At::BeforeValue | At::Token if tchar => At::Token,
        At::Quoted if b == b'"' => At::AfterQuoted,
        At::Quoted if b == b'\\' => At::QuotedPair,
        At::Quoted if QDTEXT[usize::from(b)] => At::Quoted,
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ): qdtext plus `"` and `\`.
        At::QuotedPair if QDTEXT[usize::from(b)] || b == b'"' || b == b'\\' => At::Quoted,
        _ => return None,
    })
}

const INVALID_SIZE: Refused = "invalid chunk size";
const INVALID_EXTENSION: Refused = "invalid chunk extension";

/// The value of a hex digit.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `tchar` (RFC 9110 §5.6.2), as a table: one load per byte.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        table[b] = matches!(b as u8,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
            | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text` (RFC 9110 §5.6.4).
const QDTEXT: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        table[b] = matches!(b as u8, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff);
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn size(line: &str) -> Result<Line, Refused> {
        parse(line.as_bytes(), 64)
    }

    #[test]
    fn sizes_and_extensions_the_grammar_allows() {
        for (line, want) in [
            ("5\r\n", 5),
            ("0005\r\n", 5),
            ("aB\r\n", 0xab),
            ("ffffffffffffffff\r\n", u64::MAX),
            ("5;a\r\n", 5),
            ("5;a=b;c\r\n", 5),
            ("5 ; a = b\r\n", 5),
            ("5\t;\ta\t=\t\"q;\\\"x\"\r\n", 5),
            ("5;a=\"\"\r\n", 5),
        ] {
            let len = line.len();
            assert_eq!(
                size(line),
                Ok(Line::Complete { size: want, len }),
                "{line:?}"
            );
        }
    }

    #[test]
    fn lines_the_grammar_refuses() {
        for line in [
            "5;\r\n",
            "5; \r\n",
            "5;bad[=x\r\n",
            "5 \r\n",
            "5\t\r\n",
            "5;a \r\n",
            "5;a=\r\n",
            "5;a=b \r\n",
            "5;a=\"x\r\n",
            "5;a=\"x\"y\r\n",
            "5;=b\r\n",
            "5;a=b=c\r\n",
            " 5\r\n",
            "0x5\r\n",
            "+5\r\n",
            "-1\r\n",
            "1_0\r\n",
            "5\n",
            "5\rx",
            "5;a\rb\r\n",
            "5;a=\0\r\n",
            "5;a=\"\r\"\r\n",
            // quoted-pair escapes HTAB, SP, VCHAR and obs-text only: not DEL.
            "5;a=\"\\\x7f\"\r\n",
            "5;a\nb\r\n",
            "\r\n",
            "10000000000000000\r\n",
        ] {
            assert!(size(line).is_err(), "{line:?} was accepted");
        }
    }

    /// The reason names the part of the line that broke the grammar.
    #[test]
    fn each_refusal_says_where_the_line_broke() {
        for (line, reason) in [
            ("x\r\n", INVALID_SIZE),
            ("5x\r\n", INVALID_SIZE),
            ("5;[\r\n", INVALID_EXTENSION),
            ("5\rx", "chunk size line not ended by CRLF"),
            ("10000000000000000\r\n", "chunk size too large"),
        ] {
            assert_eq!(size(line), Err(reason), "{line:?}");
        }
        assert_eq!(parse(b"5;aaaa", 4), Err("chunk size line too long"));
    }

    #[test]
    fn a_bad_byte_is_refused_before_the_line_ends() {
        assert_eq!(size("5;a"), Ok(Line::Partial));
        assert_eq!(size("5 "), Ok(Line::Partial));
        assert!(size("5;[").is_err());
        assert!(size("5 x").is_err());
    }

    #[test]
    fn a_line_is_bounded() {
        let long = format!("5;{}", "e".repeat(100));
        assert_eq!(parse(long.as_bytes(), 200), Ok(Line::Partial));
        assert!(parse(long.as_bytes(), 50).is_err());
        assert!(parse(format!("{long}\r\n").as_bytes(), 103).is_err());
        assert!(parse(format!("{long}\r\n").as_bytes(), 104).is_ok());
    }
}
