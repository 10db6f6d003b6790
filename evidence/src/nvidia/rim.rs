//! NVIDIA reference integrity manifests (RIMs): ISO/IEC 19770-2 SWID tags
//! with TCG RIM attributes, signed by an enveloped XML signature whose
//! certificate chain ends at NVIDIA's RIM root.
//!
//! What is verified ([`verify_rim`]):
//! 1. exactly one `ds:Signature`, a child of the root element, with one
//!    `ds:Reference URI=""` whose transforms are the enveloped-signature
//!    transform then inclusive C14N (1.0 or 1.1), digest SHA-384 or SHA-256,
//!    signature method ecdsa-sha384, SignedInfo canonicalization inclusive
//!    C14N (1.0 or 1.1);
//! 2. the digest of the canonical document without the signature element
//!    equals `DigestValue` (`GPU_RIM_SIGNATURE`);
//! 3. the signing chain (the `ds:X509Certificate`s, leaf first) ends at the
//!    RIM root and is valid at `now` (`GPU_RIM_CHAIN`, `CERT_*`);
//! 4. the ECDSA P-384 signature (raw r || s) over canonical SignedInfo
//!    verifies with the leaf key (`GPU_RIM_SIGNATURE`).
//!
//! Canonicalization subset (documented and tested against NVIDIA's signed
//! RIMs): element and attribute names are kept as written; namespace
//! declarations are rendered where they enter the output's scope (all in-scope
//! declarations at the apex of a subset, as inclusive C14N does for
//! SignedInfo), default first then by prefix; attributes sorted by
//! (namespace URI, local name); empty elements written as start-end pairs;
//! text and attribute values re-escaped per C14N; comments removed; line
//! ends normalized to LF. Not supported (rejected as `GPU_RIM_MALFORMED`):
//! DOCTYPE, processing instructions inside the document, `xml:*`
//! attributes (whose inheritance is where C14N 1.0 and 1.1 differ),
//! exclusive C14N, and any other transform.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use base64::{engine::general_purpose::STANDARD, Engine};
use quick_xml::events::Event;
use sha2::{Digest, Sha256, Sha384};

use super::certs::{self, Anchor, ChainKind};
use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

/// The largest RIM accepted (NVIDIA's are about 20 KiB).
pub const MAX_RIM_LEN: usize = 1024 * 1024;
const MAX_EVENTS: usize = 100_000;
const MAX_DEPTH: usize = 32;
/// The most measurement alternatives per index.
pub const MAX_ALTERNATIVES: usize = 16;

const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const C14N10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";

fn bad(what: &'static str) -> EvidenceError {
    EvidenceError::GpuRimMalformed(what)
}

/// One XML event of the document element's subtree.
#[derive(Clone, Debug)]
enum Ev {
    Start {
        qname: String,
        /// Raw attribute names and unescaped values, xmlns declarations included.
        attrs: Vec<(String, String)>,
    },
    End,
    Text(String),
}

fn tokenize(xml: &[u8]) -> Result<Vec<Ev>> {
    if xml.len() > MAX_RIM_LEN {
        return Err(bad("RIM too long"));
    }
    let text = std::str::from_utf8(xml).map_err(|_| bad("not UTF-8"))?;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut seen_root = false;
    loop {
        let ev = reader.read_event().map_err(|_| bad("XML syntax"))?;
        if out.len() > MAX_EVENTS {
            return Err(bad("too many XML events"));
        }
        match ev {
            Event::Start(_) | Event::Empty(_) if depth == 0 && seen_root => {
                return Err(bad("more than one document element"));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let qname = String::from_utf8(e.name().as_ref().to_vec())
                    .map_err(|_| bad("element name"))?;
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|_| bad("attribute"))?;
                    let k = String::from_utf8(a.key.as_ref().to_vec())
                        .map_err(|_| bad("attribute name"))?;
                    if attrs.iter().any(|(n, _)| *n == k) {
                        return Err(bad("repeated attribute"));
                    }
                    let v = a.unescape_value().map_err(|_| bad("attribute value"))?;
                    attrs.push((k, v.into_owned()));
                }
                out.push(Ev::Start { qname, attrs });
                seen_root = true;
                if matches!(ev, Event::Empty(_)) {
                    out.push(Ev::End);
                } else {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(bad("nesting too deep"));
                    }
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| bad("unbalanced end tag"))?;
                out.push(Ev::End);
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(|_| bad("text"))?;
                if depth > 0 {
                    out.push(Ev::Text(t.into_owned()));
                } else if !t.trim().is_empty() {
                    return Err(bad("text outside the document element"));
                }
            }
            Event::CData(c) => {
                if depth == 0 {
                    return Err(bad("CDATA outside the document element"));
                }
                let s = String::from_utf8(c.into_inner().into_owned()).map_err(|_| bad("CDATA"))?;
                out.push(Ev::Text(s));
            }
            Event::Comment(_) => {}
            Event::Decl(_) if !seen_root => {}
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {
                return Err(bad("unsupported XML construct"))
            }
            Event::Eof => break,
        }
    }
    if depth != 0 || !seen_root {
        return Err(bad("unbalanced document"));
    }
    Ok(out)
}

type Scope = BTreeMap<String, String>;

fn split_qname(q: &str) -> (Option<&str>, &str) {
    match q.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, q),
    }
}

/// The scope after an element's own declarations.
fn child_scope(parent: &Scope, attrs: &[(String, String)]) -> Scope {
    let mut s = parent.clone();
    for (k, v) in attrs {
        if k == "xmlns" {
            s.insert(String::new(), v.clone());
        } else if let Some(p) = k.strip_prefix("xmlns:") {
            s.insert(p.to_owned(), v.clone());
        }
    }
    s
}

fn esc_attr(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn esc_text(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Canonicalize `evs` (one element's subtree, balanced) whose parent scope
/// is `scope`, leaving out the subtree that starts at event `skip`.
fn canonicalize(evs: &[Ev], scope: &Scope, skip: Option<usize>) -> Result<String> {
    let mut out = String::new();
    let mut scopes: Vec<Scope> = vec![scope.clone()];
    let mut rendered: Vec<Scope> = vec![Scope::new()];
    let mut names: Vec<&str> = Vec::new();
    let mut skipping = 0usize;
    for (i, ev) in evs.iter().enumerate() {
        if skipping > 0 {
            match ev {
                Ev::Start { .. } => skipping += 1,
                Ev::End => skipping -= 1,
                Ev::Text(_) => {}
            }
            continue;
        }
        if Some(i) == skip {
            skipping = 1;
            continue;
        }
        match ev {
            Ev::Start { qname, attrs } => {
                let parent = scopes.last().ok_or_else(|| bad("scope"))?;
                let sc = child_scope(parent, attrs);
                let prev = rendered.last().ok_or_else(|| bad("scope"))?;
                let mut now = prev.clone();
                out.push('<');
                out.push_str(qname);
                // Namespace nodes: default first, then by prefix (BTreeMap order, "" first).
                for (p, u) in &sc {
                    let had = prev.get(p);
                    if p.is_empty() && u.is_empty() {
                        if had.is_some_and(|h| !h.is_empty()) {
                            out.push_str(" xmlns=\"\"");
                            now.insert(String::new(), String::new());
                        }
                        continue;
                    }
                    if had != Some(u) {
                        if p.is_empty() {
                            out.push_str(" xmlns=\"");
                        } else {
                            out.push_str(" xmlns:");
                            out.push_str(p);
                            out.push_str("=\"");
                        }
                        esc_attr(u, &mut out);
                        out.push('"');
                        now.insert(p.clone(), u.clone());
                    }
                }
                let mut plain: Vec<(&str, &str, &str, &str)> = Vec::new();
                for (k, v) in attrs {
                    if k == "xmlns" || k.starts_with("xmlns:") {
                        continue;
                    }
                    let (uri, local) = match split_qname(k) {
                        (None, l) => ("", l),
                        (Some("xml"), _) => {
                            return Err(bad("xml:* attributes are not supported"));
                        }
                        (Some(p), l) => (
                            sc.get(p)
                                .map(String::as_str)
                                .ok_or_else(|| bad("undeclared attribute prefix"))?,
                            l,
                        ),
                    };
                    plain.push((uri, local, k, v));
                }
                plain.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                for w in plain.windows(2) {
                    if let [a, b] = w {
                        if (a.0, a.1) == (b.0, b.1) {
                            return Err(bad("repeated attribute"));
                        }
                    }
                }
                for (_, _, k, v) in plain {
                    out.push(' ');
                    out.push_str(k);
                    out.push_str("=\"");
                    esc_attr(v, &mut out);
                    out.push('"');
                }
                out.push('>');
                names.push(qname);
                scopes.push(sc);
                rendered.push(now);
            }
            Ev::End => {
                let n = names.pop().ok_or_else(|| bad("unbalanced"))?;
                scopes.pop();
                rendered.pop();
                out.push_str("</");
                out.push_str(n);
                out.push('>');
            }
            Ev::Text(t) => esc_text(t, &mut out),
        }
    }
    Ok(out)
}

/// The end (exclusive) of the subtree starting at `start`.
fn subtree_end(evs: &[Ev], start: usize) -> Result<usize> {
    let mut depth = 0usize;
    for (i, ev) in evs.iter().enumerate().skip(start) {
        match ev {
            Ev::Start { .. } => depth += 1,
            Ev::End => {
                depth = depth.checked_sub(1).ok_or_else(|| bad("unbalanced"))?;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            Ev::Text(_) => {}
        }
    }
    Err(bad("unbalanced"))
}

/// An element located in the event list, with its scope.
struct Elem<'a> {
    at: usize,
    depth: usize,
    uri: String,
    local: &'a str,
    attrs: &'a [(String, String)],
    /// Scope of the element's parent.
    parent_scope: Scope,
}

impl Elem<'_> {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| split_qname(k).1 == name && !k.starts_with("xmlns"))
            .map(|(_, v)| v.as_str())
    }
}

fn elements(evs: &[Ev]) -> Result<Vec<Elem<'_>>> {
    let mut out = Vec::new();
    let mut scopes: Vec<Scope> = vec![Scope::new()];
    for (i, ev) in evs.iter().enumerate() {
        match ev {
            Ev::Start { qname, attrs } => {
                let parent = scopes.last().ok_or_else(|| bad("scope"))?.clone();
                let sc = child_scope(&parent, attrs);
                let (p, local) = split_qname(qname);
                let uri = sc.get(p.unwrap_or("")).cloned().unwrap_or_default();
                if p.is_some() && uri.is_empty() {
                    return Err(bad("undeclared element prefix"));
                }
                out.push(Elem {
                    at: i,
                    depth: scopes.len() - 1,
                    uri,
                    local,
                    attrs,
                    parent_scope: parent,
                });
                scopes.push(sc);
            }
            Ev::End => {
                scopes.pop();
            }
            Ev::Text(_) => {}
        }
    }
    Ok(out)
}

fn text_of(evs: &[Ev], e: &Elem<'_>) -> Result<String> {
    let end = subtree_end(evs, e.at)?;
    let mut s = String::new();
    for ev in evs.get(e.at + 1..end.saturating_sub(1)).unwrap_or_default() {
        match ev {
            Ev::Text(t) => s.push_str(t),
            _ => return Err(bad("element content")),
        }
    }
    Ok(s)
}

fn b64(s: &str) -> Result<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(clean).map_err(|_| bad("base64"))
}

/// One reference measurement: an index and its accepted values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RimMeasurement {
    /// RIM index (0-based; SPDM measurement block `index + 1`).
    pub index: u32,
    pub active: bool,
    pub name: String,
    /// Accepted values (Hash0 .. Hash{alternatives-1}).
    pub alternatives: Vec<Vec<u8>>,
}

/// A parsed RIM with its signature parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rim {
    pub tag_id: String,
    pub colloquial_version: String,
    pub measurements: BTreeMap<u32, RimMeasurement>,
    signed_info_c14n: String,
    document_c14n: String,
    digest_alg: &'static str,
    digest_value: Vec<u8>,
    signature_value: Vec<u8>,
    certificates: Vec<Vec<u8>>,
}

/// Parse a RIM and prepare (but not check) its signature.
pub fn parse_rim(xml: &[u8]) -> Result<Rim> {
    let evs = tokenize(xml)?;
    let els = elements(&evs)?;
    let root = els.first().ok_or_else(|| bad("no document element"))?;
    if root.local != "SoftwareIdentity" {
        return Err(bad("document element is not SoftwareIdentity"));
    }
    let find_all = |uri: &str, local: &str| -> Vec<&Elem<'_>> {
        els.iter()
            .filter(|e| e.uri == uri && e.local == local)
            .collect()
    };
    let one = |uri: &str, local: &'static str| -> Result<&Elem<'_>> {
        match find_all(uri, local).as_slice() {
            [e] => Ok(*e),
            _ => Err(bad(local)),
        }
    };
    let sig = one(DSIG, "Signature")?;
    if sig.depth != 1 {
        return Err(bad("signature is not a child of the document element"));
    }
    let si = one(DSIG, "SignedInfo")?;
    let c14n = one(DSIG, "CanonicalizationMethod")?;
    if !matches!(c14n.attr("Algorithm"), Some(C14N10 | C14N11)) {
        return Err(bad("unsupported SignedInfo canonicalization"));
    }
    if one(DSIG, "SignatureMethod")?.attr("Algorithm") != Some(ECDSA_SHA384) {
        return Err(bad("unsupported signature method"));
    }
    if one(DSIG, "Reference")?.attr("URI") != Some("") {
        return Err(bad("reference is not the whole document"));
    }
    let transforms: Vec<Option<&str>> = find_all(DSIG, "Transform")
        .iter()
        .map(|t| t.attr("Algorithm"))
        .collect();
    match transforms.as_slice() {
        [Some(ENVELOPED), Some(C14N10 | C14N11)] => {}
        _ => return Err(bad("unsupported transforms")),
    }
    let digest_alg = match one(DSIG, "DigestMethod")?.attr("Algorithm") {
        Some(
            "http://www.w3.org/2001/04/xmldsig-more#sha384"
            | "http://www.w3.org/2001/04/xmlenc#sha384",
        ) => "sha384",
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => "sha256",
        _ => return Err(bad("unsupported digest method")),
    };
    let digest_value = b64(&text_of(&evs, one(DSIG, "DigestValue")?)?)?;
    let signature_value = b64(&text_of(&evs, one(DSIG, "SignatureValue")?)?)?;
    let certificates = find_all(DSIG, "X509Certificate")
        .iter()
        .map(|e| text_of(&evs, e).and_then(|t| b64(&t)))
        .collect::<Result<Vec<_>>>()?;
    if certificates.len() > certs::MAX_CHAIN_LEN {
        return Err(bad("too many certificates"));
    }
    let si_end = subtree_end(&evs, si.at)?;
    let signed_info_c14n = canonicalize(
        evs.get(si.at..si_end).ok_or_else(|| bad("SignedInfo"))?,
        &si.parent_scope,
        None,
    )?;
    let document_c14n = canonicalize(&evs, &Scope::new(), Some(sig.at))?;

    let mut measurements = BTreeMap::new();
    for e in els.iter().filter(|e| e.local == "Resource") {
        if e.attr("type") != Some("Measurement") {
            continue;
        }
        let num = |k: &str| -> Result<u32> {
            e.attr(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("measurement attribute"))
        };
        let index = num("index")?;
        let n = usize::try_from(num("alternatives")?).map_err(|_| bad("alternatives"))?;
        if n == 0 || n > MAX_ALTERNATIVES {
            return Err(bad("alternatives"));
        }
        let active = match e.attr("active") {
            Some("True" | "true") => true,
            Some("False" | "false") => false,
            _ => return Err(bad("measurement active flag")),
        };
        let mut alternatives = Vec::with_capacity(n);
        for k in 0..n {
            let h = e
                .attr(&format!("Hash{k}"))
                .ok_or_else(|| bad("measurement hash missing"))?;
            alternatives.push(hex::decode(h).map_err(|_| bad("measurement hash"))?);
        }
        let m = RimMeasurement {
            index,
            active,
            name: e.attr("name").unwrap_or_default().to_owned(),
            alternatives,
        };
        if measurements.insert(index, m).is_some() {
            return Err(bad("measurement index repeated"));
        }
    }
    let meta = find_all(&root.uri, "Meta");
    Ok(Rim {
        tag_id: root.attr("tagId").unwrap_or_default().to_owned(),
        colloquial_version: meta
            .first()
            .and_then(|m| m.attr("colloquialVersion"))
            .unwrap_or_default()
            .to_owned(),
        measurements,
        signed_info_c14n,
        document_c14n,
        digest_alg,
        digest_value,
        signature_value,
        certificates,
    })
}

/// The RIM roots a verifier trusts.
#[derive(Clone, Debug)]
pub struct RimAnchors(Vec<Anchor>);

impl RimAnchors {
    /// NVIDIA's RIM root, shipped with this crate.
    pub fn nvidia() -> RimAnchors {
        // Invariant: the shipped root decodes; `shipped_roots_decode` checks it.
        #[allow(clippy::expect_used)]
        let a = Anchor::from_pem(super::NVIDIA_RIM_ROOT_PEM).expect("shipped NVIDIA RIM root");
        RimAnchors(vec![a])
    }

    /// Other roots (DER), chosen explicitly by the caller.
    pub fn from_der(roots: &[&[u8]]) -> Result<RimAnchors> {
        Ok(RimAnchors(
            roots
                .iter()
                .map(|d| Anchor::from_der(d))
                .collect::<Result<_>>()?,
        ))
    }
}

/// Parse a RIM and verify its signature and chain at `now_unix`.
pub fn verify_rim(xml: &[u8], anchors: &RimAnchors, now_unix: u64) -> Result<Rim> {
    let rim = parse_rim(xml)?;
    let digest: Vec<u8> = match rim.digest_alg {
        "sha256" => Sha256::digest(rim.document_c14n.as_bytes()).to_vec(),
        _ => Sha384::digest(rim.document_c14n.as_bytes()).to_vec(),
    };
    if digest != rim.digest_value {
        return Err(EvidenceError::GpuRimSignature(
            "document digest differs from DigestValue",
        ));
    }
    let chain = certs::verify_chain(&rim.certificates, &anchors.0, now_unix, ChainKind::Rim)?;
    if !chain.leaf().may_sign_data(ChainKind::Rim)? {
        return Err(EvidenceError::GpuRimChain("signer may not sign"));
    }
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, chain.leaf().public_key())
        .verify(rim.signed_info_c14n.as_bytes(), &rim.signature_value)
        .map_err(|_| EvidenceError::GpuRimSignature("signature over SignedInfo"))?;
    Ok(rim)
}

/// One index where a report differs from its references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RimMismatch {
    /// SPDM measurement block index (RIM index + 1).
    pub index: u32,
    /// Accepted values (hex).
    pub expected: Vec<String>,
    /// The report's value (hex), `None` when the report lacks the block.
    pub actual: Option<String>,
    /// Which RIM stated the reference (its colloquial version).
    pub rim: String,
}

/// The outcome of comparing a report with RIMs: every mismatch, never just
/// the first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RimComparison {
    /// Active reference indices compared (SPDM numbering).
    pub compared: BTreeSet<u32>,
    /// Mismatches not tolerated by policy.
    pub mismatches: Vec<RimMismatch>,
    /// Mismatches at indices that policy tolerates (still reported).
    pub tolerated: Vec<RimMismatch>,
}

impl RimComparison {
    /// True when no untolerated mismatch remains.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Compare a report's measurements (SPDM index to value) with the active
/// entries of `rims` (typically the driver RIM and the VBIOS RIM), index by
/// index. `tolerate` lists SPDM indices whose mismatch policy accepts; none
/// by default.
pub fn compare(
    report: &BTreeMap<u32, Vec<u8>>,
    rims: &[&Rim],
    tolerate: &BTreeSet<u32>,
) -> RimComparison {
    let mut c = RimComparison::default();
    for rim in rims {
        for m in rim.measurements.values().filter(|m| m.active) {
            let index = m.index.saturating_add(1);
            c.compared.insert(index);
            let actual = report.get(&index);
            if actual.is_some_and(|a| m.alternatives.iter().any(|x| x == a)) {
                continue;
            }
            let mm = RimMismatch {
                index,
                expected: m.alternatives.iter().map(hex::encode).collect(),
                actual: actual.map(hex::encode),
                rim: rim.colloquial_version.clone(),
            };
            if tolerate.contains(&index) {
                c.tolerated.push(mm);
            } else {
                c.mismatches.push(mm);
            }
        }
    }
    c
}
