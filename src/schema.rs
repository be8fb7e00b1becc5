//! The shape of cluster.yaml: a JSON Schema derived from `config`'s raw types, and the shape
//! check every command runs before deserializing.
//!
//! The raw types are the one source of truth: the schema `kube-bundle schema` prints (and
//! docs/cluster.schema.json ships, for editors) is generated from them, and the shape check
//! walks the document against that same schema. serde stops at the first unknown key or
//! missing field; the shape check reports every one of them in one run, each with the key it
//! most likely meant, so a user fixes a file in one pass rather than one error per run.

use std::borrow::Cow;
use std::collections::BTreeSet;

use granit_parser::{Event, Parser, Span};
use miette::SourceSpan;
use serde_json::{Map, Value};

use crate::config::RawCluster;
use crate::source::SourceFile;
use crate::validate::Finding;

/// The file `init` writes beside cluster.yaml, which its first line points editors at.
pub const SCHEMA_FILE_NAME: &str = "cluster.schema.json";

/// Deeper than any cluster.yaml; a deeper document is left to the parser's own budget.
const MAX_DEPTH: usize = 32;

/// The JSON Schema of cluster.yaml.
pub fn cluster_schema() -> Value {
    let mut schema = schemars::schema_for!(RawCluster).to_value();
    if let Value::Object(root) = &mut schema {
        root.insert("title".into(), "kube-bundle cluster description".into());
    }
    schema
}

/// The schema as the text `kube-bundle schema` prints and docs/cluster.schema.json holds.
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&cluster_schema())
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

/// Every unknown key and every missing required key in `source`, in document order.
/// A document that does not even scan yields nothing here: the parser reports it.
pub fn shape_findings(source: &SourceFile) -> Vec<Finding> {
    let Some(document) = read_document(&source.text) else {
        return Vec::new();
    };
    if let Some(second) = document.second {
        // Checking the first document alone would report keys missing that the second holds.
        let finding = Finding::error(
            source,
            "(document)",
            "a second YAML document starts here; cluster.yaml is one document".into(),
            "remove the `---` line and merge what follows into the cluster description (or \
             drop it)"
                .into(),
            span_of(&source.text, second),
        );
        return vec![finding];
    }
    let schema = cluster_schema();
    let mut walk = Walk {
        source,
        root: &schema,
        findings: Vec::new(),
    };
    walk.check(&document.node, &schema, "", document.at);
    walk.findings
}

/// A YAML node reduced to what the shape check needs: mapping keys and their positions.
enum Node {
    Mapping(Vec<(Key, Node)>),
    Sequence(Vec<Node>),
    /// A scalar, an alias or anything the check leaves to the parser.
    Leaf,
}

struct Key {
    name: String,
    at: Span,
}

struct Document {
    node: Node,
    at: Span,
    /// Where a second YAML document starts, if the file holds more than one.
    second: Option<Span>,
}

fn read_document(text: &str) -> Option<Document> {
    let mut events = Parser::new_from_str(text)
        .map_while(Result::ok)
        .filter(|(event, _)| is_content(event));
    loop {
        let (event, at) = events.next()?;
        if matches!(event, Event::DocumentStart(..)) {
            let (first, _) = events.next()?;
            let node = read_node(first, &mut events, 0)?;
            let second = events
                .find(|(event, _)| matches!(event, Event::DocumentStart(..)))
                .map(|(_, at)| at);
            return Some(Document { node, at, second });
        }
    }
}

/// Comments and anchor names carry no shape.
fn is_content(event: &Event<'_>) -> bool {
    !matches!(event, Event::Anchor(..) | Event::StreamStart) && !is_comment(event)
}

#[allow(unreachable_patterns)]
fn is_comment(event: &Event<'_>) -> bool {
    matches!(event, Event::Comment(..))
}

fn read_node<'a>(
    first: Event<'a>,
    events: &mut impl Iterator<Item = (Event<'a>, Span)>,
    depth: usize,
) -> Option<Node> {
    if depth > MAX_DEPTH {
        return None;
    }
    match first {
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            loop {
                let (event, at) = events.next()?;
                let name = match event {
                    Event::MappingEnd => return Some(Node::Mapping(entries)),
                    Event::Scalar(text, ..) => text.into_owned(),
                    // A collection as a key: no name to check, and serde refuses it anyway.
                    other => {
                        read_node(other, events, depth + 1)?;
                        String::new()
                    }
                };
                let (value, _) = events.next()?;
                let value = read_node(value, events, depth + 1)?;
                entries.push((Key { name, at }, value));
            }
        }
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                let (event, _) = events.next()?;
                if matches!(event, Event::SequenceEnd) {
                    return Some(Node::Sequence(items));
                }
                items.push(read_node(event, events, depth + 1)?);
            }
        }
        Event::Scalar(..) | Event::Alias(..) | Event::UnresolvedAlias(..) => Some(Node::Leaf),
        _ => None,
    }
}

struct Walk<'a> {
    source: &'a SourceFile,
    root: &'a Value,
    findings: Vec<Finding>,
}

impl<'a> Walk<'a> {
    /// Checks `node` against `schema`; `owner` is where the node's own key is (the
    /// document start for the root), which is where a missing key is reported.
    fn check(&mut self, node: &Node, schema: &'a Value, path: &str, owner: Span) {
        match node {
            Node::Mapping(entries) => {
                let Some(object) = self.object_schema(schema) else {
                    return;
                };
                self.check_mapping(entries, object, path, owner);
            }
            Node::Sequence(items) => {
                let Some(items_schema) = self.array_items(schema) else {
                    return;
                };
                for (index, item) in items.iter().enumerate() {
                    self.check(item, items_schema, &format!("{path}[{index}]"), owner);
                }
            }
            Node::Leaf => {}
        }
    }

    fn check_mapping(
        &mut self,
        entries: &[(Key, Node)],
        object: &'a Map<String, Value>,
        path: &str,
        owner: Span,
    ) {
        static NO_PROPERTIES: std::sync::LazyLock<Map<String, Value>> =
            std::sync::LazyLock::new(Map::new);
        let properties = object
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&NO_PROPERTIES);
        let extra = object.get("additionalProperties");
        // A YAML merge key brings keys the walk cannot see; serde resolves it.
        let merges = entries.iter().any(|(key, _)| key.name == "<<");
        for (key, value) in entries {
            let key_path = join(path, &key.name);
            if let Some(property) = properties.get(&key.name) {
                self.check(value, property, &key_path, key.at);
            } else if key.name == "<<" || key.name.is_empty() {
                continue;
            } else if matches!(extra, Some(Value::Bool(false))) {
                self.unknown_key(key, &key_path, path, properties);
            } else if let Some(extra @ Value::Object(_)) = extra {
                self.check(value, extra, &key_path, key.at);
            }
        }
        if merges {
            return;
        }
        let present: BTreeSet<&str> = entries.iter().map(|(key, _)| key.name.as_str()).collect();
        let required = object.get("required").and_then(Value::as_array);
        for name in required.into_iter().flatten().filter_map(Value::as_str) {
            if !present.contains(name) {
                self.missing_key(name, path, owner, properties.get(name));
            }
        }
    }

    fn unknown_key(
        &mut self,
        key: &Key,
        key_path: &str,
        path: &str,
        known: &'a Map<String, Value>,
    ) {
        let place = if path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in `{path}`")
        };
        let keys: Vec<&str> = known.keys().map(String::as_str).collect();
        let help = match closest(&key.name, &keys) {
            Some(near) => format!(
                "did you mean `{near}`? The keys {place} are: {}",
                keys.join(", ")
            ),
            None => format!("the keys {place} are: {}", keys.join(", ")),
        };
        let message = format!("unknown key {place}");
        self.push(&shorten(key_path), message, help, key.at);
    }

    fn missing_key(&mut self, name: &str, path: &str, owner: Span, property: Option<&'a Value>) {
        let place = if path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("in `{path}`")
        };
        let what = property
            .and_then(|p| self.description(p))
            .map(|text| format!(" ({})", lowercase_first(text.trim_end_matches('.'))))
            .unwrap_or_default();
        let help = format!(
            "add `{name}:`{what}; the example `kube-bundle init` writes shows every key, and \
             `kube-bundle schema` prints them all"
        );
        let message = format!("required key missing {place}");
        self.push(&join(path, name), message, help, owner);
    }

    fn push(&mut self, field: &str, message: String, help: String, at: Span) {
        let span = span_of(&self.source.text, at);
        self.findings
            .push(Finding::error(self.source, field, message, help, span));
    }

    /// The first line of a property's description, wherever schemars put it.
    fn description(&self, property: &'a Value) -> Option<&'a str> {
        let text = property
            .get("description")
            .or_else(|| self.resolve(property).get("description"))?
            .as_str()?;
        text.lines().next()
    }

    /// `schema` with a `$ref` to the root's definitions followed.
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let target = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.strip_prefix("#/"))
            .and_then(|pointer| self.root.pointer(&format!("/{pointer}")));
        target.unwrap_or(schema)
    }

    /// The alternatives of `schema`: itself, or each branch of an `anyOf`/`oneOf` (an
    /// `Option<T>` field is `T` or null).
    fn alternatives(&self, schema: &'a Value) -> Vec<&'a Value> {
        let schema = self.resolve(schema);
        let branches = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array);
        match branches {
            Some(branches) => branches.iter().map(|b| self.resolve(b)).collect(),
            None => vec![schema],
        }
    }

    fn object_schema(&self, schema: &'a Value) -> Option<&'a Map<String, Value>> {
        self.alternatives(schema)
            .into_iter()
            .find_map(|alternative| {
                let object = alternative.as_object()?;
                (object.contains_key("properties") || object.contains_key("additionalProperties"))
                    .then_some(object)
            })
    }

    fn array_items(&self, schema: &'a Value) -> Option<&'a Value> {
        self.alternatives(schema)
            .into_iter()
            .find_map(|alternative| alternative.get("items"))
    }
}

/// A description as a clause: "The etcd cluster" reads "the etcd cluster"; "IP" stays.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if second.is_lowercase() => first
            .to_lowercase()
            .chain(text[first.len_utf8()..].chars())
            .collect(),
        _ => text.to_owned(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn span_of(text: &str, at: Span) -> Option<SourceSpan> {
    let start = at.start.byte_offset()?;
    let rest = text.get(start..)?;
    // At least the first character, whole, and never past the end of its line.
    let first = rest.chars().next()?.len_utf8();
    let line = rest.find('\n').unwrap_or(rest.len());
    // A snippet of a huge line would flood the terminal; the message names the key.
    if line > crate::source::MAX_SNIPPET_LINE {
        return None;
    }
    let wanted = at
        .end
        .byte_offset()
        .map_or(0, |end| end.saturating_sub(start));
    let len = wanted.min(line).max(first);
    rest.is_char_boundary(len)
        .then(|| SourceSpan::new(start.into(), len))
}

/// A key as shown in a message: escaped and cut short, since it is the user's text.
fn shorten(key: &str) -> Cow<'_, str> {
    const LIMIT: usize = 60;
    if key.chars().count() <= LIMIT && !key.chars().any(char::is_control) {
        return Cow::Borrowed(key);
    }
    let escaped: String = key.escape_debug().take(LIMIT).collect();
    Cow::Owned(format!("{escaped}…"))
}

/// The known key `wrong` most likely meant: same letters ignoring case, or a few edits away.
fn closest<'k>(wrong: &str, known: &[&'k str]) -> Option<&'k str> {
    let wrong = wrong.to_lowercase();
    known
        .iter()
        .map(|&candidate| {
            let distance = strsim::damerau_levenshtein(&wrong, &candidate.to_lowercase());
            (distance, candidate)
        })
        .filter(|&(distance, candidate)| distance <= (candidate.len() / 3).max(2))
        .min()
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn findings(text: &str) -> Vec<String> {
        let source = SourceFile::new(Path::new("cluster.yaml"), text.to_owned());
        shape_findings(&source)
            .iter()
            .map(|f| format!("{f} | {}", f.help))
            .collect()
    }

    #[test]
    fn both_examples_have_the_shape_the_schema_describes() {
        assert!(findings(include_str!("../examples/cluster.yaml")).is_empty());
        assert!(findings(include_str!("../examples/seed-ha.yaml")).is_empty());
        assert!(findings(include_str!("../templates/cluster.yaml")).is_empty());
    }

    #[test]
    fn every_unknown_key_is_reported_in_one_run_with_the_key_it_meant() {
        let text = include_str!("../examples/cluster.yaml")
            .replacen("etcd:", "etcd:\n  endpionts: []", 1)
            .replacen("network:", "network:\n  serviceCidr: 10.0.0.0/16", 1)
            .replacen("kind:", "colour: blue\nkind:", 1);
        let found = findings(&text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("colour: unknown key at the top level")
                    && !f.contains("did you mean"))
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("did you mean `serviceCIDR`?"))
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("etcd.endpionts: unknown key in `etcd`")
                    && f.contains("did you mean `endpoints`?"))
        );
    }

    #[test]
    fn every_missing_required_key_is_reported_in_one_run() {
        let found = findings("apiVersion: kube-bundle/v1alpha1\nkind: Cluster\netcd: {}\n");
        let missing: Vec<&str> = found.iter().filter_map(|f| f.split(':').next()).collect();
        assert_eq!(
            missing,
            [
                "etcd.endpoints",
                "name",
                "kubernetesVersion",
                "masters",
                "network"
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn free_form_maps_and_lists_are_checked_inside_but_not_their_own_keys() {
        let text = include_str!("../examples/cluster.yaml")
            .replacen("extraArgs:", "extraArgs:\n    any-flag-name: \"x\"", 1)
            .replacen("ip: 10.20.0.11 }", "ip: 10.20.0.11, role: master }", 1);
        let found = findings(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("masters[0].role: unknown key in `masters[0]`"));
    }

    #[test]
    fn a_key_in_any_script_is_pointed_at_whole() {
        let text = include_str!("../examples/cluster.yaml").replacen("kind:", "ключ: 1\nkind:", 1);
        let source = SourceFile::new(Path::new("cluster.yaml"), text);
        let found = shape_findings(&source);
        assert_eq!(found.len(), 1);
        let shown = crate::diagnostics::render(&found[0]);
        assert!(
            shown.contains("ключ: unknown key at the top level"),
            "{shown}"
        );
        assert!(shown.contains("cluster.yaml:6:1"), "{shown}");
    }

    #[test]
    fn a_document_that_does_not_scan_is_left_to_the_parser() {
        assert!(findings("a: [\n").is_empty());
        let two = findings("apiVersion: x\n---\nkind: Cluster\n");
        assert_eq!(two.len(), 1, "{two:?}");
        assert!(
            two[0].contains("a second YAML document starts here"),
            "{two:?}"
        );
        assert!(findings("").is_empty());
        let deep = "a: ".to_owned() + &"[".repeat(100) + &"]".repeat(100);
        assert_eq!(findings(&deep).len(), 0);
    }

    #[test]
    fn near_misses_are_suggested_and_strangers_are_not() {
        let known = ["serviceCIDR", "nodePortRange", "dnsDomain"];
        assert_eq!(closest("servicecidr", &known), Some("serviceCIDR"));
        assert_eq!(closest("dnsDomian", &known), Some("dnsDomain"));
        assert_eq!(closest("podCIDR", &known), None);
        assert_eq!(closest("x", &known), None);
    }
}
