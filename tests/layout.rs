//! The layout reads like the architecture: imports between the library's modules point
//! one way. A module that imports one that imports it back (directly or through others)
//! fails here, naming the cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules its non-test code names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut visit = |module: String, path: &Path| {
        let text = std::fs::read_to_string(path).unwrap();
        // Unit tests sit at the end of a file, after `#[cfg(test)]`.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let deps = graph.entry(module.clone()).or_default();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + 7..];
            // `crate::{a, b::C}` names several modules at once.
            let names: Vec<String> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(ident)
                    .collect(),
                None => vec![ident(rest)],
            };
            for name in names {
                if !name.is_empty() && name != module && name != "self" {
                    deps.insert(name);
                }
            }
        }
    };
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            for file in std::fs::read_dir(&path).unwrap() {
                visit(name.clone(), &file.unwrap().path());
            }
        } else if !["lib", "main"].contains(&name.as_str()) {
            visit(name, &path);
        }
    }
    graph
}

fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|n| n == node) {
        let mut cycle = path[i..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for dep in graph.get(node).into_iter().flatten() {
        if let Some(c) = find_cycle(graph, dep, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn module_imports_have_no_cycles() {
    let graph = imports();
    assert!(graph.len() > 10, "found too few modules: {graph:?}");
    assert!(
        graph["server"].contains("api"),
        "the scan missed imports: {graph:?}"
    );
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = find_cycle(&graph, module, &mut Vec::new(), &mut done) {
            panic!("modules import each other: {}", cycle.join(" → "));
        }
    }
}
