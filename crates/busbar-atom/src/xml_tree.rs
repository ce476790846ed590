//! A small namespace-resolved element tree of a document, so descriptions can be read
//! whatever order and prefixes the writer used (Python, JS and update bodies all differ).

use quick_xml::NsReader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

pub const ATOM_NS: &str = "http://www.w3.org/2005/Atom";
pub const CONNECT_NS: &str = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Bodies nest a few levels; anything deeper is not an entity description.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct Element {
    /// The namespace URI, empty when unbound.
    pub namespace: String,
    pub name: String,
    /// Attributes by namespace URI and local name.
    pub attributes: Vec<(String, String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child with this local name, in any namespace.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The local part of the `xsi:type` attribute (`d6p1:int` gives `int`).
    pub fn xsi_type(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(ns, name, _)| ns == XSI_NS && name == "type")
            .map(|(_, _, value)| value.rsplit(':').next().unwrap_or(value.as_str()))
    }

    /// The value of the unqualified attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(ns, local, _)| ns.is_empty() && local == name)
            .map(|(_, _, value)| value.as_str())
    }

    /// Whether the element holds nothing (`<Parameters/>`, `<AuthorizationRules></AuthorizationRules>`).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty() && self.text.trim().is_empty()
    }
}

/// Parses `body` into its root element.
pub fn parse(body: &str) -> Result<Element, String> {
    let mut reader = NsReader::from_str(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let bad = |e: &dyn std::fmt::Display| format!("The document is not well-formed XML: {e}");
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(|e| bad(&e))?;
        let namespace = namespace_of(&resolved);
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err("The document has more than one root element.".to_owned());
            }
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("The document nests too deeply.".to_owned());
                }
                stack.push(element(&reader, namespace, &start)?);
            }
            Event::Empty(start) => {
                let element = element(&reader, namespace, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(bad(&"unbalanced end tag"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                if let Some(current) = stack.last_mut() {
                    current
                        .text
                        .push_str(&text.xml10_content().map_err(|e| bad(&e))?);
                }
            }
            Event::CData(data) => {
                if let Some(current) = stack.last_mut() {
                    current.text.push_str(&data.decode().map_err(|e| bad(&e))?);
                }
            }
            Event::GeneralRef(reference) => {
                let Some(current) = stack.last_mut() else {
                    continue;
                };
                if let Some(c) = reference.resolve_char_ref().map_err(|e| bad(&e))? {
                    current.text.push(c);
                } else {
                    let name = reference.decode().map_err(|e| bad(&e))?;
                    let resolved = resolve_predefined_entity(&name)
                        .ok_or_else(|| bad(&format!("unknown entity &{name};")))?;
                    current.text.push_str(resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad(&"the document ends inside an element"));
    }
    root.ok_or_else(|| "The document is empty.".to_owned())
}

fn namespace_of(resolved: &ResolveResult<'_>) -> String {
    match resolved {
        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.0).into_owned(),
        _ => String::new(),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    namespace: String,
    start: &BytesStart<'_>,
) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| format!("A malformed attribute on <{name}>: {e}"))?;
        let key = attribute.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (resolved, local) = reader.resolve_attribute(key);
        let value = attribute
            .unescape_value()
            .map_err(|e| format!("A malformed attribute on <{name}>: {e}"))?;
        attributes.push((
            namespace_of(&resolved),
            String::from_utf8_lossy(local.as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        namespace,
        name,
        attributes,
        children: Vec::new(),
        text: String::new(),
    })
}
