//! Hand-built DHCPv6 payloads (RFC 8415 layouts) and a small option walker, for the benchmark and
//! the load generator. Deliberately independent of the server's codec: the benchmark checks the
//! server, so it must not share its encoder.

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::*;

/// One option: code, length, body.
pub fn opt(code: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + body.len());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// A client/server message: type, 24-bit transaction id, options in order.
pub fn msg(msg_type: u8, xid: u32, options: &[Vec<u8>]) -> Vec<u8> {
    let xid = xid.to_be_bytes();
    let mut v = vec![msg_type, xid[1], xid[2], xid[3]];
    for o in options {
        v.extend_from_slice(o);
    }
    v
}

pub fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// IA_NA with at most one IAADDR (address, preferred, valid).
pub fn ia_na(iaid: u32, t1: u32, t2: u32, addr: Option<(Ipv6Addr, u32, u32)>) -> Vec<u8> {
    let mut body = [be32(iaid), be32(t1), be32(t2)].concat();
    if let Some((a, p, v)) = addr {
        body.extend(opt(
            OPT_IAADDR,
            &[&a.octets()[..], &be32(p), &be32(v)].concat(),
        ));
    }
    opt(OPT_IA_NA, &body)
}

/// IA_PD with at most one IAPREFIX (prefix, length, preferred, valid).
pub fn ia_pd(iaid: u32, t1: u32, t2: u32, prefix: Option<(Ipv6Addr, u8, u32, u32)>) -> Vec<u8> {
    let mut body = [be32(iaid), be32(t1), be32(t2)].concat();
    if let Some((a, len, p, v)) = prefix {
        body.extend(opt(
            OPT_IAPREFIX,
            &[&be32(p)[..], &be32(v), &[len], &a.octets()].concat(),
        ));
    }
    opt(OPT_IA_PD, &body)
}

/// Option Request option.
pub fn oro(codes: &[u16]) -> Vec<u8> {
    opt(
        OPT_ORO,
        &codes
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect::<Vec<_>>(),
    )
}

/// A client `message` (type, transaction id, options) whose Option Request also lists `code`:
/// appended to its ORO, or an ORO of `code` alone added at the end when it has none.
pub fn with_oro_code(message: &[u8], code: u16) -> Vec<u8> {
    let opts = options(&message[4..]).expect("a well-formed message");
    let mut out = message[..4].to_vec();
    let mut listed = false;
    for (c, body) in opts {
        if c == OPT_ORO && !listed {
            listed = true;
            out.extend(opt(c, &[body, &code.to_be_bytes()].concat()));
        } else {
            out.extend(opt(c, body));
        }
    }
    if !listed {
        out.extend(oro(&[code]));
    }
    out
}

/// Elapsed Time of zero.
pub fn elapsed() -> Vec<u8> {
    opt(OPT_ELAPSED_TIME, &[0, 0])
}

/// One Relay-Forw hop around `inner` from a relay on `link_address`, for `peer`.
pub fn relay_forw(
    inner: &[u8],
    link_address: Ipv6Addr,
    peer: Ipv6Addr,
    interface_id: Option<&[u8]>,
) -> Vec<u8> {
    let mut v = vec![MSG_RELAY_FORW, 0];
    v.extend_from_slice(&link_address.octets());
    v.extend_from_slice(&peer.octets());
    if let Some(id) = interface_id {
        v.extend(opt(OPT_INTERFACE_ID, id));
    }
    v.extend(opt(
        OPT_REMOTE_ID,
        &[0, 0, 0x0d, 0xe9, b'p', b'o', b'r', b't', b'1'],
    ));
    v.extend(opt(OPT_RELAY_MSG, inner));
    v
}

/// Options of a message body, in order, as (code, body); `None` when an option runs past the end.
pub fn options(mut body: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 4 {
            return None;
        }
        let code = u16::from_be_bytes([body[0], body[1]]);
        let len = u16::from_be_bytes([body[2], body[3]]) as usize;
        let rest = &body[4..];
        if rest.len() < len {
            return None;
        }
        out.push((code, &rest[..len]));
        body = &rest[len..];
    }
    Some(out)
}

/// The first option `code` among `opts`.
pub fn find<'a>(opts: &[(u16, &'a [u8])], code: u16) -> Option<&'a [u8]> {
    opts.iter().find(|(c, _)| *c == code).map(|(_, b)| *b)
}

/// What an IA_NA or IA_PD in a reply holds: IAID, T1, T2, its leases and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaContents {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    /// (address or prefix, prefix length (128 for an address), preferred, valid).
    pub leases: Vec<(Ipv6Addr, u8, u32, u32)>,
    /// Status code inside the IA, `None` when absent (success).
    pub status: Option<u16>,
}

/// Parses an IA_NA (`pd` false) or IA_PD (`pd` true) option body.
pub fn parse_ia(body: &[u8], pd: bool) -> Option<IaContents> {
    if body.len() < 12 {
        return None;
    }
    let word = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    let mut ia = IaContents {
        iaid: word(0),
        t1: word(4),
        t2: word(8),
        leases: Vec::new(),
        status: None,
    };
    for (code, sub) in options(&body[12..])? {
        match code {
            OPT_IAADDR if !pd && sub.len() >= 24 => {
                let addr: [u8; 16] = sub[..16].try_into().ok()?;
                let p = u32::from_be_bytes(sub[16..20].try_into().ok()?);
                let v = u32::from_be_bytes(sub[20..24].try_into().ok()?);
                ia.leases.push((Ipv6Addr::from(addr), 128, p, v));
            }
            OPT_IAPREFIX if pd && sub.len() >= 25 => {
                let p = u32::from_be_bytes(sub[0..4].try_into().ok()?);
                let v = u32::from_be_bytes(sub[4..8].try_into().ok()?);
                let addr: [u8; 16] = sub[9..25].try_into().ok()?;
                ia.leases.push((Ipv6Addr::from(addr), sub[8], p, v));
            }
            OPT_STATUS_CODE if sub.len() >= 2 => {
                ia.status = Some(u16::from_be_bytes([sub[0], sub[1]]));
            }
            _ => {}
        }
    }
    Some(ia)
}

/// A DUID-LL (type 3, hardware type 1) for client number `index`: 10 bytes, distinct per index.
pub fn client_duid(index: u32) -> [u8; 10] {
    let i = index.to_be_bytes();
    [0, 3, 0, 1, 0x02, 0xbe, i[0], i[1], i[2], i[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ia_round_trips_through_the_walker() {
        let addr: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let na = ia_na(9, 10, 20, Some((addr, 30, 40)));
        let opts = options(&na).unwrap();
        let ia = parse_ia(find(&opts, OPT_IA_NA).unwrap(), false).unwrap();
        assert_eq!(
            ia,
            IaContents {
                iaid: 9,
                t1: 10,
                t2: 20,
                leases: vec![(addr, 128, 30, 40)],
                status: None
            }
        );
        let prefix: Ipv6Addr = "2001:db8:100::".parse().unwrap();
        let pd = ia_pd(7, 1, 2, Some((prefix, 56, 3, 4)));
        let opts = options(&pd).unwrap();
        let ia = parse_ia(find(&opts, OPT_IA_PD).unwrap(), true).unwrap();
        assert_eq!(ia.leases, vec![(prefix, 56, 3, 4)]);
    }

    #[test]
    fn truncated_options_are_refused() {
        assert!(options(&[0, 1, 0, 9, 1]).is_none());
        assert!(options(&[0, 1]).is_none());
        assert_eq!(options(&[]).unwrap(), vec![]);
    }

    #[test]
    fn client_duids_differ() {
        assert_ne!(client_duid(1), client_duid(2));
        assert_eq!(msg(MSG_RENEW, 0x123456, &[])[1..4], [0x12, 0x34, 0x56]);
    }
}
