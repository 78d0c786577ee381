//! Java `.properties` files, the format Kafka Connect users write worker and
//! connector configs in: `key=value`, `key: value` or `key value`, `#`/`!`
//! comments, backslash line continuations and escapes.

use std::path::Path;

use crate::config::ConfigMap;

/// Parses `.properties` text. Later duplicates win, as in Java.
pub fn parse(text: &str) -> ConfigMap {
    let mut map = ConfigMap::new();
    let mut logical = String::new();
    for line in text.lines() {
        let piece = line.trim_start();
        if logical.is_empty()
            && (piece.is_empty() || piece.starts_with('#') || piece.starts_with('!'))
        {
            continue;
        }
        if ends_with_continuation(piece) {
            logical.push_str(&piece[..piece.len() - 1]);
            continue;
        }
        logical.push_str(piece);
        let (key, value) = split_entry(&logical);
        map.insert(unescape(&key), unescape(&value));
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_entry(&logical);
        map.insert(unescape(&key), unescape(&value));
    }
    map
}

/// This host's name: the default identity of coordinators and runners.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Reads and parses a `.properties` file.
pub fn read(path: &Path) -> std::io::Result<ConfigMap> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

fn ends_with_continuation(line: &str) -> bool {
    let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
    trailing % 2 == 1
}

fn split_entry(line: &str) -> (String, String) {
    let mut escaped = false;
    for (index, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' => {
                let key = line[..index].to_owned();
                let mut rest = line[index..].trim_start_matches([' ', '\t']);
                if c == ' ' || c == '\t' {
                    if let Some(stripped) = rest.strip_prefix(['=', ':']) {
                        rest = stripped;
                    }
                } else {
                    rest = &rest[1..];
                }
                return (key, rest.trim_start_matches([' ', '\t']).to_owned());
            }
            _ => {}
        }
    }
    (line.to_owned(), String::new())
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_java_accepts() {
        let map = parse(
            "# comment\n! also comment\nbootstrap.servers=localhost:9092\nname: local-file\nfile test.txt\n\
             key.converter = org.apache.kafka.connect.json.JsonConverter\nlong=a,\\\n    b\npath=C:\\\\dir\nempty=\n",
        );
        assert_eq!(map["bootstrap.servers"], "localhost:9092");
        assert_eq!(map["name"], "local-file");
        assert_eq!(map["file"], "test.txt");
        assert_eq!(
            map["key.converter"],
            "org.apache.kafka.connect.json.JsonConverter"
        );
        assert_eq!(map["long"], "a,b");
        assert_eq!(map["path"], "C:\\dir");
        assert_eq!(map["empty"], "");
    }

    #[test]
    fn escaped_separator_stays_in_key() {
        let map = parse("a\\=b=c\nunicode=\\u0041");
        assert_eq!(map["a=b"], "c");
        assert_eq!(map["unicode"], "A");
    }
}
