//! `--env-file`: systemd's `EnvironmentFile=` format, so a unit's environment file serves an
//! init script unchanged.
//!
//! `KEY=VALUE` lines; blank lines and lines starting with `#` or `;` are skipped; a backslash at
//! the end of a line joins the next one to it, and a quoted value may span lines. A value may mix unquoted text (a backslash escapes the next
//! character; trailing blanks are dropped), `"double quotes"` (a backslash escapes `"`, `\`,
//! `` ` ``, `$` and a newline; otherwise it stays) and `'single quotes'` (nothing is special).
//! A path starting with `-` names a file that may be missing. Unlike systemd, a line that is
//! not `KEY=VALUE` is an error naming the file and line, not a warning in a journal nobody reads.
//! Values are bytes: UTF-8 is not required.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Reads one file (`-PATH`: one that may be missing) into `KEY=VALUE` pairs, in file order.
pub fn read(spec: &Path) -> Result<Vec<(OsString, OsString)>, String> {
    let raw = spec.as_os_str().as_encoded_bytes();
    let (optional, path) = match raw.strip_prefix(b"-") {
        Some(rest) => (true, Path::new(OsStr::from_bytes(rest))),
        None => (false, spec),
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            parse(&bytes).map_err(|(line, why)| format!("{}:{line}: {why}", path.display()))
        }
        Err(err) if optional && err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(format!("{}: {err}", path.display())),
    }
}

/// Parses the file's bytes; an error gives the line number (from 1) and what is wrong.
fn parse(bytes: &[u8]) -> Result<Vec<(OsString, OsString)>, (usize, &'static str)> {
    let mut pairs = Vec::new();
    let mut line_no = 0;
    // Lines without their CR (files written on Windows).
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .peekable();
    while let Some(first) = lines.next() {
        line_no += 1;
        let start = line_no;
        let mut line = first.to_vec();
        loop {
            match scan(&line) {
                // An unescaped backslash at the end joins the next line to this one.
                End::Continued if lines.peek().is_some() => {
                    line.pop();
                }
                // A quote still open: the value goes on, newline included (as systemd reads it).
                End::InQuotes if lines.peek().is_some() => line.push(b'\n'),
                _ => break,
            }
            if let Some(next) = lines.next() {
                line.extend_from_slice(next);
            }
            line_no += 1;
        }
        let text = trim_start(&line);
        if text.is_empty() || text[0] == b'#' || text[0] == b';' {
            continue;
        }
        let Some(eq) = text.iter().position(|&b| b == b'=') else {
            return Err((start, "not a KEY=VALUE line"));
        };
        let key = trim_end(&text[..eq]);
        let valid = !key.is_empty()
            && !key[0].is_ascii_digit()
            && key.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err((
                start,
                "the name must be letters, digits and _ (not first a digit)",
            ));
        }
        let value = value(trim_start(&text[eq + 1..])).map_err(|why| (start, why))?;
        pairs.push((OsString::from_vec(key.to_vec()), OsString::from_vec(value)));
    }
    Ok(pairs)
}

/// How a line ends: complete, with a backslash that escapes its newline, or inside quotes.
#[derive(PartialEq)]
enum End {
    Complete,
    Continued,
    InQuotes,
}

fn scan(line: &[u8]) -> End {
    let mut single = false;
    let mut double = false;
    let mut escaped = false;
    for &b in line {
        match b {
            _ if escaped => escaped = false,
            b'\\' if !single => escaped = true,
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            _ => {}
        }
    }
    if escaped {
        End::Continued
    } else if single || double {
        End::InQuotes
    } else {
        End::Complete
    }
}

fn value(text: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(text.len());
    // How much of `out` is unquoted text at its end, which loses its trailing blanks.
    let mut keep = 0;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\'' => {
                let Some(len) = text[i + 1..].iter().position(|&b| b == b'\'') else {
                    return Err("a single quote is not closed");
                };
                out.extend_from_slice(&text[i + 1..i + 1 + len]);
                i += len + 2;
                keep = out.len();
            }
            b'"' => {
                i += 1;
                loop {
                    match text.get(i) {
                        None => return Err("a double quote is not closed"),
                        Some(b'"') => break,
                        Some(b'\\') => match text.get(i + 1) {
                            Some(b'\n') => i += 2,
                            Some(&c @ (b'"' | b'\\' | b'`' | b'$')) => {
                                out.push(c);
                                i += 2;
                            }
                            _ => {
                                out.push(b'\\');
                                i += 1;
                            }
                        },
                        Some(&c) => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                keep = out.len();
            }
            b'\\' => {
                match text.get(i + 1) {
                    Some(b'\n') | None => {}
                    Some(&c) => out.push(c),
                }
                i += 2;
                keep = out.len();
            }
            c => {
                out.push(c);
                if !c.is_ascii_whitespace() {
                    keep = out.len();
                }
                i += 1;
            }
        }
    }
    out.truncate(keep);
    Ok(out)
}

fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn trim_end(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    &b[..b.len() - n]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
            .collect()
    }

    #[test]
    fn systemd_environment_files_parse_as_systemd_reads_them() {
        let text = "\
# a comment
; another

PLAIN=value
SPACED =  padded value  
DOUBLE=\"a \\\"quoted\\\" $HOME \\\\ \\n\"
SINGLE='no \\ escapes \"here\"'
MIXED=un\"quoted\"'parts'
EMPTY=
LONG=first \\
second
CRLF=x\r";
        assert_eq!(
            pairs(text),
            [
                ("PLAIN", "value"),
                ("SPACED", "padded value"),
                ("DOUBLE", "a \"quoted\" $HOME \\ \\n"),
                ("SINGLE", "no \\ escapes \"here\""),
                ("MIXED", "unquotedparts"),
                ("EMPTY", ""),
                ("LONG", "first second"),
                ("CRLF", "x"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(
            parse(b"A=1\nnot a pair\n"),
            Err((2, "not a KEY=VALUE line"))
        );
        assert!(parse(b"1X=1").is_err());
        assert_eq!(parse(b"A='open"), Err((1, "a single quote is not closed")));
        assert_eq!(
            parse(b"\n\nA=\"open\n"),
            Err((3, "a double quote is not closed"))
        );
        let bytes = parse(b"B=\xff\xfe").unwrap();
        assert_eq!(bytes[0].1.as_encoded_bytes(), b"\xff\xfe");
    }

    #[test]
    fn a_dash_makes_a_missing_file_empty() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let mut dashed = OsString::from("-");
        dashed.push(&missing);
        assert_eq!(read(Path::new(&dashed)), Ok(Vec::new()));
        let err = read(&missing).unwrap_err();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");
    }
}
