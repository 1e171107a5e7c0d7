//! The hot path: a plain A or AAAA question for a cluster name that has addresses, answered
//! from wire bytes made when the zone was built, without decoding the question into a
//! message or encoding an answer. Anything else (other types, names without addresses,
//! compression in the question, unusual flags or EDNS options) returns None and takes the
//! general path, which gives the same answer more slowly; a unit test holds the two equal.
//!
//! An answer record's owner is a pointer to the question's name (offset 12), so the bytes made
//! ahead serve every spelling of the name (DNS names are case-insensitive; the question's own
//! case is echoed).

use std::collections::HashMap;
use std::net::IpAddr;

/// The answer records of one name, in wire form: A and AAAA, with how many of each.
#[derive(Clone, Debug, Default)]
pub struct Records {
    a: (u16, Vec<u8>),
    aaaa: (u16, Vec<u8>),
}

/// The zone's names with addresses, by their wire form in lower case.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    by_name: HashMap<Vec<u8>, Records>,
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

impl Answers {
    /// Records `addrs` (with `ttl`) as the answers for `name` (text, fully qualified).
    pub fn add(&mut self, name: &str, addrs: &[IpAddr], ttl: u32) {
        let Some(key) = wire_name(name) else { return };
        let r = self.by_name.entry(key).or_default();
        for ip in addrs {
            let (set, ty, data): (&mut (u16, Vec<u8>), u16, Vec<u8>) = match ip {
                IpAddr::V4(v4) => (&mut r.a, TYPE_A, v4.octets().to_vec()),
                IpAddr::V6(v6) => (&mut r.aaaa, TYPE_AAAA, v6.octets().to_vec()),
            };
            set.0 += 1;
            set.1.extend_from_slice(&[0xc0, 12]);
            set.1.extend_from_slice(&ty.to_be_bytes());
            set.1.extend_from_slice(&CLASS_IN.to_be_bytes());
            set.1.extend_from_slice(&ttl.to_be_bytes());
            set.1.extend_from_slice(&(data.len() as u16).to_be_bytes());
            set.1.extend_from_slice(&data);
        }
    }

    /// The whole answer to `query`, if it is a question this path serves; `ra` is whether
    /// recursion is available, `limit` the most bytes the client takes.
    pub fn answer(&self, query: &[u8], ra: bool, limit: usize) -> Option<Vec<u8>> {
        if query.len() < 12 + 5 {
            return None;
        }
        let flags = u16::from_be_bytes([query[2], query[3]]);
        // A query (QR 0), opcode QUERY, no TC, Z 0, rcode 0: RD, AD and CD may be set.
        if flags & 0xfecf != 0 {
            return None;
        }
        let count = |i: usize| u16::from_be_bytes([query[i], query[i + 1]]);
        let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
        if qd != 1 || an != 0 || ns != 0 || ar > 1 {
            return None;
        }
        // The question's name: plain labels only.
        let mut key = Vec::with_capacity(64);
        let mut at = 12;
        loop {
            let len = *query.get(at)? as usize;
            if len & 0xc0 != 0 {
                return None;
            }
            key.push(len as u8);
            at += 1;
            if len == 0 {
                break;
            }
            let label = query.get(at..at + len)?;
            key.extend(label.iter().map(u8::to_ascii_lowercase));
            at += len;
        }
        let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
        let qclass = u16::from_be_bytes([*query.get(at + 2)?, *query.get(at + 3)?]);
        let question_end = at + 4;
        if qclass != CLASS_IN {
            return None;
        }
        // EDNS: one OPT record for the root, version 0, no options (then the answer carries
        // one back with our size and the client's DO bit).
        let mut edns: Option<(u16, bool)> = None;
        if ar == 1 {
            let opt = query.get(question_end..)?;
            if opt.len() != 11 || opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT {
                return None;
            }
            let size = u16::from_be_bytes([opt[3], opt[4]]);
            let (ext_rcode, version) = (opt[5], opt[6]);
            let do_bit = opt[7] & 0x80 != 0;
            if ext_rcode != 0 || version != 0 || u16::from_be_bytes([opt[9], opt[10]]) != 0 {
                return None;
            }
            edns = Some((size, do_bit));
        } else if query.len() != question_end {
            return None;
        }
        let records = self.by_name.get(&key)?;
        let (n, rrs) = match qtype {
            TYPE_A => &records.a,
            TYPE_AAAA => &records.aaaa,
            _ => return None,
        };
        if *n == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(question_end + rrs.len() + 11);
        out.extend_from_slice(&query[..2]);
        // QR, AA, the client's RD, RA when forwarding works, the client's CD; NOERROR.
        let rd = flags & 0x0100;
        let cd = flags & 0x0010;
        let ra = if ra { 0x0080 } else { 0 };
        out.extend_from_slice(&(0x8400 | rd | ra | cd).to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&u16::from(edns.is_some()).to_be_bytes());
        out.extend_from_slice(&query[12..question_end]);
        out.extend_from_slice(rrs);
        if let Some((_, do_bit)) = edns {
            out.push(0);
            out.extend_from_slice(&TYPE_OPT.to_be_bytes());
            out.extend_from_slice(&super::MAX_UDP.to_be_bytes());
            out.extend_from_slice(&[0, 0, if do_bit { 0x80 } else { 0 }, 0, 0, 0]);
        }
        // Too long for the client: the general path decides what to leave out.
        (out.len() <= limit).then_some(out)
    }
}

/// `a.b.c.` → `\x01a\x01b\x01c\x00`, in lower case; None for a label that does not fit.
fn wire_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    Some(out)
}

/// The UDP size limit a question allows, read from its OPT record if it has one (512
/// without).
pub fn udp_limit(query: &[u8]) -> usize {
    // Only the fast path's shape is read here: the OPT record is the last 11 bytes.
    if query.len() >= 12 + 11 && u16::from_be_bytes([query[10], query[11]]) == 1 {
        let opt = &query[query.len() - 11..];
        if opt[0] == 0 && u16::from_be_bytes([opt[1], opt[2]]) == TYPE_OPT {
            let size = u16::from_be_bytes([opt[3], opt[4]]);
            return size.clamp(512, super::MAX_UDP) as usize;
        }
    }
    512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_lower_case_labels() {
        assert_eq!(wire_name("A.bc.").unwrap(), b"\x01a\x02bc\x00");
        assert!(wire_name("a..b").is_none());
    }
}
