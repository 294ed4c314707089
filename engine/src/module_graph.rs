//! A check of the engine's shape, run with the unit tests (and so in CI): no module imports
//! one that imports it back, directly or through others.
//!
//! A module's imports are the `crate::…` (and `super::…`) paths its code names, outside
//! comments and its `tests` module. A module and its own submodules are one room (a parent
//! declares its children, a child may use its parent's private items): edges between them do
//! not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module file below `src` (the binary's excepted), by path (`restore::plan`).
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    stack.push(p);
                }
                continue;
            }
            let Some(rel) = p.strip_prefix(src).ok().and_then(|r| r.to_str()) else {
                continue;
            };
            let Some(name) = rel.strip_suffix(".rs") else {
                continue;
            };
            if name == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            out.insert(name.replace('/', "::"), text);
        }
    }
    out
}

/// The code of a module file: no comments, no `tests` module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest known module that `path` (`a::b::C`) starts with.
fn resolve(path: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|k| path[..k].join("::"))
        .find(|m| known.contains_key(m))
}

fn words(s: &str) -> Vec<&str> {
    s.split("::")
        .map(|w| w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_')))
        .take_while(|w| !w.is_empty())
        .collect()
}

fn imports(module: &str, text: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
    let code = code(text);
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                out.extend(resolve(&words(item.trim()), known));
            }
        } else {
            out.extend(resolve(&words(rest), known));
        }
    }
    let parent: Vec<&str> = module.split("::").collect();
    for (i, _) in code.match_indices("super::") {
        let mut base = parent[..parent.len() - 1].to_vec();
        base.extend(words(&code[i + "super::".len()..]));
        out.extend(resolve(&base, known));
    }
    out.remove(module);
    out
}

/// Whether `a` and `b` are one room: one is the other's ancestor.
fn same_room(a: &str, b: &str) -> bool {
    a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// The groups of modules that import each other (strongly connected, more than one).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in edges.keys() {
        if done.contains(m) || !reached[m].contains(m) {
            continue;
        }
        let group: Vec<String> = reached[m]
            .iter()
            .filter(|n| reached.get(n).is_some_and(|r| r.contains(m)))
            .cloned()
            .collect();
        done.extend(group.iter().cloned());
        out.push(group);
    }
    out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    assert!(known.len() > 20, "{} modules found", known.len());
    let edges: BTreeMap<String, BTreeSet<String>> = known
        .iter()
        .map(|(m, text)| {
            let deps = imports(m, text, &known)
                .into_iter()
                .filter(|d| !same_room(m, d))
                .collect();
            (m.clone(), deps)
        })
        .collect();
    let found = cycles(&edges);
    let shown: Vec<String> = found
        .iter()
        .map(|group| {
            let lines: Vec<String> = group
                .iter()
                .map(|m| {
                    let inside: Vec<&String> =
                        edges[m].iter().filter(|d| group.contains(d)).collect();
                    format!("  {m} -> {inside:?}")
                })
                .collect();
            lines.join("\n")
        })
        .collect();
    assert!(
        found.is_empty(),
        "modules that import each other:\n{}",
        shown.join("\n\n")
    );
}

#[test]
fn the_check_sees_a_cycle() {
    let known: BTreeMap<String, String> = [
        ("a", "use crate::b::Thing;"),
        ("b", "fn f() { crate::c::g() }"),
        ("c", "use crate::{a, x};\n// crate::d is a comment"),
        ("d", "use crate::a;"),
    ]
    .into_iter()
    .map(|(m, t)| (m.to_owned(), t.to_owned()))
    .collect();
    let edges: BTreeMap<String, BTreeSet<String>> = known
        .iter()
        .map(|(m, t)| (m.clone(), imports(m, t, &known)))
        .collect();
    assert_eq!(
        cycles(&edges),
        vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]
    );
}
