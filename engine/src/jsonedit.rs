//! Edits to `.thrum/config.json` that change only the bytes of the member written.
//!
//! thrum's config is the user's file: a `schedule` or `plugin add` must not re-indent it,
//! reorder it, or rewrite `12345678901234567890123` as `1.2345678901234568e+22`. So a write
//! replaces, inserts or removes one member of the `backup` object in the text as it was read,
//! and the result is parsed back and compared with the document it must be; anything the
//! editor cannot do that way is left to the caller (which then writes the whole document).
//! A few lines of scanning JSON are kept here rather than a crate: no maintained Rust crate
//! edits JSON text in place.

use serde_json::{Map, Value};

/// A member of an object in the text: where its key starts, and where its value is.
#[derive(Debug, Clone, Copy)]
struct Member {
    key_start: usize,
    value: (usize, usize),
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of the JSON value starting at `i` (which must not be whitespace).
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => {
            i += 1;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            None
        }
        b'{' | b'[' => {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = value_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The members of the object whose `{` is at `open`, and the position of its `}`.
fn members(text: &str, open: usize) -> Option<(Vec<(String, Member)>, usize)> {
    let b = text.as_bytes();
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = skip_ws(b, open + 1);
    if b.get(i) == Some(&b'}') {
        return Some((out, i));
    }
    loop {
        let key_start = i;
        let key_end = value_end(b, i)?;
        let key: String = serde_json::from_str(text.get(key_start..key_end)?).ok()?;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let v_start = skip_ws(b, i + 1);
        let v_end = value_end(b, v_start)?;
        out.push((
            key,
            Member {
                key_start,
                value: (v_start, v_end),
            },
        ));
        i = skip_ws(b, v_end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some((out, i)),
            _ => return None,
        }
    }
}

/// The indentation of the line `pos` is on.
fn indent_at(text: &str, pos: usize) -> &str {
    let line_start = text[..pos].rfind('\n').map_or(0, |n| n + 1);
    let line = &text[line_start..pos];
    &line[..line.len() - line.trim_start().len()]
}

/// `value` as pretty JSON whose continuation lines sit at `indent`, or on one line when the
/// object it goes in is on one line.
fn render_at(value: &Value, indent: Option<&str>) -> Option<String> {
    match indent {
        Some(indent) => {
            let text = serde_json::to_string_pretty(value).ok()?;
            Some(text.replace('\n', &format!("\n{indent}")))
        }
        None => serde_json::to_string(value).ok(),
    }
}

/// Set `key` in the object at `open` to `value` (replacing its value, or adding a member
/// after the last one), in place.
fn set_member(text: &str, open: usize, key: &str, value: &Value) -> Option<String> {
    let (list, close) = members(text, open)?;
    let multiline = text[open..close].contains('\n');
    if let Some((_, m)) = list.iter().find(|(k, _)| k == key) {
        let indent = multiline.then(|| indent_at(text, m.key_start));
        let rendered = render_at(value, indent)?;
        return Some(format!(
            "{}{}{}",
            &text[..m.value.0],
            rendered,
            &text[m.value.1..]
        ));
    }
    let key_json = serde_json::to_string(key).ok()?;
    match list.last() {
        Some((_, last)) => {
            let indent = indent_at(text, last.key_start).to_owned();
            let sep = if multiline {
                format!("\n{indent}")
            } else {
                " ".to_owned()
            };
            let rendered = render_at(value, multiline.then_some(indent.as_str()))?;
            Some(format!(
                "{},{sep}{key_json}: {rendered}{}",
                &text[..last.value.1],
                &text[last.value.1..]
            ))
        }
        None => {
            let outer = indent_at(text, open).to_owned();
            let inner = format!("{outer}  ");
            let rendered = render_at(value, Some(&inner))?;
            Some(format!(
                "{}{{\n{inner}{key_json}: {rendered}\n{outer}}}{}",
                &text[..open],
                &text[close + 1..]
            ))
        }
    }
}

/// Remove `key` from the object at `open`, with its comma.
fn remove_member(text: &str, open: usize, key: &str) -> Option<String> {
    let (list, close) = members(text, open)?;
    let i = list.iter().position(|(k, _)| k == key)?;
    let (start, end) = if list.len() == 1 {
        (open + 1, close)
    } else if i + 1 < list.len() {
        // Up to the next member's key: its comma and line break go with it.
        (list[i].1.key_start, list[i + 1].1.key_start)
    } else {
        // The last one: from the end of the one before.
        (list[i - 1].1.value.1, list[i].1.value.1)
    };
    Some(format!("{}{}", &text[..start], &text[end..]))
}

/// The text of `old` (whose document is `before`) edited to hold `after`, changing only the
/// members of `backup` that differ (or `backup` itself when it is not an object in both).
/// `None` when something else differs, or the edit would not give `after` exactly.
pub fn patch(old: &str, before: &Map<String, Value>, after: &Map<String, Value>) -> Option<String> {
    let others_same = before
        .iter()
        .filter(|(k, _)| *k != "backup")
        .eq(after.iter().filter(|(k, _)| *k != "backup"));
    if !others_same {
        return None;
    }
    let top = skip_ws(old.as_bytes(), 0);
    let mut text = old.to_owned();
    match (before.get("backup"), after.get("backup")) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            for (key, value) in a {
                if b.get(key) != Some(value) {
                    let (list, _) = members(&text, top)?;
                    let open = list.iter().find(|(k, _)| k == "backup")?.1.value.0;
                    text = set_member(&text, open, key, value)?;
                }
            }
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                let (list, _) = members(&text, top)?;
                let open = list.iter().find(|(k, _)| k == "backup")?.1.value.0;
                text = remove_member(&text, open, key)?;
            }
        }
        (b, Some(a)) if b != Some(a) => text = set_member(&text, top, "backup", a)?,
        (Some(_), None) => text = remove_member(&text, top, "backup")?,
        _ => {}
    }
    let check: Value = serde_json::from_str(&text).ok()?;
    (check == Value::Object(after.clone())).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    fn edit(old: &str, change: impl FnOnce(&mut Map<String, Value>)) -> String {
        let before = doc(old);
        let mut after = before.clone();
        change(&mut after);
        patch(old, &before, &after).expect("patched")
    }

    const THRUM: &str = "{\n    \"daemon\": {\"sync_interval\": 60, \"big\": 12345678901234567890123, \"f\": 2.50},\n    \"backup\": {\n        \"dir\": \"/b\"\n    }\n}\n";

    #[test]
    fn setting_a_key_leaves_every_other_byte() {
        let out = edit(THRUM, |d| {
            d["backup"]["schedule"] = Value::from("6h");
        });
        assert_eq!(
            out,
            "{\n    \"daemon\": {\"sync_interval\": 60, \"big\": 12345678901234567890123, \"f\": 2.50},\n    \"backup\": {\n        \"dir\": \"/b\",\n        \"schedule\": \"6h\"\n    }\n}\n"
        );
        // Changing it again replaces only its value; removing it gives the file back.
        let again = edit(&out, |d| d["backup"]["schedule"] = Value::from("1h"));
        assert!(again.contains("\"schedule\": \"1h\"") && !again.contains("6h"));
        let back = edit(&again, |d| {
            d["backup"].as_object_mut().unwrap().remove("schedule");
        });
        assert_eq!(back, THRUM);
    }

    #[test]
    fn a_new_backup_section_and_nested_values() {
        let old = "{\"daemon\": {\"local_only\": true}}";
        let out = edit(old, |d| {
            d.insert(
                "backup".into(),
                serde_json::json!({"plugins": [{"name": "x"}]}),
            );
        });
        assert!(out.starts_with("{\"daemon\": {\"local_only\": true}, \"backup\": "));
        assert_eq!(doc(&out)["backup"]["plugins"][0]["name"], "x");
        let empty = edit("{}", |d| {
            d.insert("backup".into(), serde_json::json!({"schedule": "1h"}));
        });
        assert_eq!(doc(&empty)["backup"]["schedule"], "1h");
    }

    #[test]
    fn anything_else_is_left_to_the_caller() {
        let before = doc(THRUM);
        let mut after = before.clone();
        after.insert("other".into(), Value::from(1));
        assert_eq!(patch(THRUM, &before, &after), None);
    }

    proptest::proptest! {
        #[test]
        fn patched_text_always_parses_to_the_intended_document(
            keys in proptest::collection::vec("[a-z]{1,6}", 0..5),
            set in proptest::collection::vec(("[a-z]{1,6}", 0i64..1000), 0..4),
            remove in proptest::collection::vec("[a-z]{1,6}", 0..3),
        ) {
            let mut backup = Map::new();
            for k in &keys {
                backup.insert(k.clone(), Value::from(k.len()));
            }
            let mut before = Map::new();
            before.insert("keep".into(), serde_json::json!({"n": 1.50}));
            before.insert("backup".into(), Value::Object(backup));
            let old = serde_json::to_string_pretty(&before).unwrap();
            let mut after = before.clone();
            for (k, v) in &set {
                after["backup"][k] = Value::from(*v);
            }
            for k in &remove {
                after["backup"].as_object_mut().unwrap().remove(k);
            }
            let out = patch(&old, &before, &after).unwrap();
            let parsed: Map<String, Value> = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(parsed, after);
        }
    }
}
