//! The JSON Lines check behind [`validate_jsonl`](crate::validate_jsonl) and
//! [`copy_jsonl_to_output`](crate::copy_jsonl_to_output).
//!
//! It builds nothing: one pass over a block of lines checks each as UTF-8 and as one JSON value
//! (RFC 8259) together, skipping through strings (most of a line's bytes) eight bytes at a
//! time. That is ~1.4x as fast as a UTF-8 pass and serde_json's `IgnoredAny` natively, ~1.6x in
//! the sandbox (`docs/PERFORMANCE.md`). It accepts exactly what serde_json accepts, line by
//! line: the engine's tests compile this file natively and hold the two against each other.
//!
//! A line ends at `\n`; within a line, whitespace is space, tab and `\r`, so a JSON value never
//! spans lines. A line of whitespace alone (or nothing) is blank: it is counted as a line but
//! holds no value.

/// Lines seen and the values among them (the lines that are not blank).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    /// Lines, blank ones included.
    pub lines: u64,
    /// Lines holding a JSON value.
    pub values: u64,
}

/// The first problem in a block: where, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// 1-based line number within the block.
    pub line: u64,
    /// 1-based byte of that line where the problem is.
    pub byte: usize,
    /// What is wrong there.
    pub problem: Problem,
}

/// What is wrong with a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The bytes there are not UTF-8.
    Utf8,
    /// Not JSON: what was expected or found.
    Json(&'static str),
}

/// Check every line of `text` (complete lines: the last may lack its `\n`).
pub fn check_lines(text: &[u8]) -> Result<Lines, Invalid> {
    let mut p = Parser {
        text,
        pos: 0,
        line: 0,
        line_start: 0,
        open: Vec::new(),
    };
    let mut values = 0;
    while p.pos < text.len() {
        p.line += 1;
        p.line_start = p.pos;
        p.skip_space();
        if !p.at_line_end() {
            p.value()?;
            p.skip_space();
            if !p.at_line_end() {
                return Err(p.invalid("trailing characters after the value"));
            }
            values += 1;
        }
        p.pos += 1; // the newline (or past the end)
    }
    Ok(Lines {
        lines: p.line,
        values,
    })
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `x` is set (only the lowest such byte is sure to be one:
/// a borrow can mark bytes above it, which is all a search for the first needs).
const fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

/// The high bit of each byte of `x` that ends a plain run inside a string is set (the lowest
/// exactly): a quote, a backslash, a control character or a byte of a multi-byte character.
const fn string_stops(x: u64) -> u64 {
    zero_bytes(x ^ (LO * b'"' as u64))
        | zero_bytes(x ^ (LO * b'\\' as u64))
        | (x.wrapping_sub(LO * 0x20) & !x & HI)
        | (x & HI)
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    line: u64,
    line_start: usize,
    /// The closing byte of each open array or object, innermost last.
    open: Vec<u8>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn at_line_end(&self) -> bool {
        matches!(self.peek(), None | Some(b'\n'))
    }

    /// The problem at the current byte: `what`, unless the line ends there or the byte
    /// starts something that is not UTF-8.
    fn invalid(&self, what: &'static str) -> Invalid {
        let problem = match self.peek() {
            None | Some(b'\n') => Problem::Json("the line ends inside a value"),
            Some(0x80..) if self.char_len().is_none() => Problem::Utf8,
            _ => Problem::Json(what),
        };
        Invalid {
            line: self.line,
            byte: self.pos - self.line_start + 1,
            problem,
        }
    }

    /// The length of the UTF-8 character starting at the current byte, if it is one.
    fn char_len(&self) -> Option<usize> {
        let len = match self.peek()? {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return None,
        };
        let bytes = self.text.get(self.pos..self.pos + len)?;
        std::str::from_utf8(bytes).ok().map(|_| len)
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// One JSON value, nested ones included, without recursion.
    fn value(&mut self) -> Result<(), Invalid> {
        self.open.clear();
        'value: loop {
            self.skip_space();
            match self.peek() {
                Some(start @ (b'{' | b'[')) => {
                    let close = if start == b'{' { b'}' } else { b']' };
                    self.pos += 1;
                    self.skip_space();
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        self.open.push(close);
                        if close == b'}' {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.pos += 1;
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.invalid("expected a value")),
            }
            // A value is complete: a comma starts the next one, or it closes what it was in.
            while let Some(&close) = self.open.last() {
                self.skip_space();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if close == b'}' {
                            self.skip_space();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == close => {
                        self.pos += 1;
                        self.open.pop();
                    }
                    _ if close == b'}' => return Err(self.invalid("expected ',' or '}'")),
                    _ => return Err(self.invalid("expected ',' or ']'")),
                }
            }
            return Ok(());
        }
    }

    /// An object's key and its colon.
    fn key(&mut self) -> Result<(), Invalid> {
        if self.peek() != Some(b'"') {
            return Err(self.invalid("expected a key (a string)"));
        }
        self.pos += 1;
        self.string()?;
        self.skip_space();
        if self.peek() != Some(b':') {
            return Err(self.invalid("expected ':'"));
        }
        self.pos += 1;
        Ok(())
    }

    /// The rest of a string after its opening quote.
    fn string(&mut self) -> Result<(), Invalid> {
        loop {
            while let Some(chunk) = self.text.get(self.pos..self.pos + 8) {
                let mut word = [0; 8];
                word.copy_from_slice(chunk);
                let stops = string_stops(u64::from_le_bytes(word));
                if stops != 0 {
                    self.pos += (stops.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape()?;
                }
                Some(0x20..=0x7F) => self.pos += 1,
                Some(0x80..) => match self.char_len() {
                    Some(len) => self.pos += len,
                    None => return Err(self.invalid("not UTF-8")),
                },
                Some(_) => return Err(self.invalid("control character in a string")),
                None => return Err(self.invalid("unterminated string")),
            }
        }
    }

    /// The rest of an escape after its backslash. Like serde_json when it skips a value, a
    /// `\u` escape needs four hex digits, not a valid code point (lone surrogates pass).
    fn escape(&mut self) -> Result<(), Invalid> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
            Some(b'u') => {
                let hex = self.text.get(self.pos + 1..self.pos + 5);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(self.invalid("a \\u escape needs four hex digits"));
                }
                self.pos += 5;
            }
            _ => return Err(self.invalid("invalid escape")),
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(self.invalid("expected a value"));
        }
        self.pos += word.len();
        Ok(())
    }

    /// Skip ASCII digits; returns how many there were.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), Invalid> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.invalid("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.invalid("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.invalid("invalid number"));
            }
        }
        Ok(())
    }
}
