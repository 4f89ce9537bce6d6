//! Byte-level decoding and encoding. The decoder accepts exactly what the encoder produces:
//! every length and field is checked, nothing is normalised, so decode → encode gives the
//! received bytes back.

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::*;

use super::duid::{Duid, DUID_MAX_LEN, DUID_MIN_LEN};
use super::option::{
    DhcpOption, IaAddr, IaNa, IaPd, IaPrefix, IaTa, LqQuery, LqRelayData, RemoteId, StatusCode,
};
use super::{
    is_message_type, is_relay_type, DecodeError, EncodeError, Message, Packet, RelayMessage,
    MAX_OPTION_DEPTH, MAX_RELAY_DEPTH, MESSAGE_HEADER_LEN, RELAY_HEADER_LEN,
};

/// Longest domain name on the wire, length bytes and root label included (RFC 1035 §2.3.4).
const MAX_NAME_WIRE_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4); the two top bits of a length byte also mark compression
/// pointers, which RFC 8415 §10 forbids in DHCPv6.
const MAX_LABEL_LEN: usize = 63;

/// Decodes a packet that sits inside `depth` Relay Message options.
pub(super) fn decode_packet(bytes: &[u8], depth: usize) -> Result<Packet, DecodeError> {
    let Some(&msg_type) = bytes.first() else {
        return Err(DecodeError::EmptyMessage);
    };
    if is_relay_type(msg_type) {
        if depth >= MAX_RELAY_DEPTH {
            return Err(DecodeError::TooManyRelayHops);
        }
        if bytes.len() < RELAY_HEADER_LEN {
            return Err(DecodeError::TruncatedHeader {
                msg_type,
                len: bytes.len(),
                need: RELAY_HEADER_LEN,
            });
        }
        Ok(Packet::Relay(RelayMessage {
            msg_type,
            hop_count: bytes[1],
            link_address: ipv6_at(bytes, 2),
            peer_address: ipv6_at(bytes, 18),
            options: decode_options(&bytes[RELAY_HEADER_LEN..], depth, 0)?,
        }))
    } else if is_message_type(msg_type) {
        if bytes.len() < MESSAGE_HEADER_LEN {
            return Err(DecodeError::TruncatedHeader {
                msg_type,
                len: bytes.len(),
                need: MESSAGE_HEADER_LEN,
            });
        }
        Ok(Packet::Message(Message {
            msg_type,
            transaction_id: [bytes[1], bytes[2], bytes[3]],
            options: decode_options(&bytes[MESSAGE_HEADER_LEN..], depth, 0)?,
        }))
    } else {
        Err(DecodeError::UnknownMessageType(msg_type))
    }
}

/// The 16 bytes at `offset`; the caller has checked the length.
fn ipv6_at(bytes: &[u8], offset: usize) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[offset..offset + 16]);
    Ipv6Addr::from(octets)
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// Decodes a sequence of options at encapsulation `level` inside a packet at relay `depth`.
fn decode_options(
    mut body: &[u8],
    depth: usize,
    level: usize,
) -> Result<Vec<DhcpOption>, DecodeError> {
    let mut options = Vec::new();
    let mut offset = 0;
    while !body.is_empty() {
        if body.len() < 4 {
            return Err(DecodeError::OptionHeaderTruncated {
                offset,
                remaining: body.len(),
            });
        }
        let code = u16::from_be_bytes([body[0], body[1]]);
        let len = usize::from(u16::from_be_bytes([body[2], body[3]]));
        let rest = &body[4..];
        if len > rest.len() {
            return Err(DecodeError::OptionLengthPastEnd {
                code,
                len,
                remaining: rest.len(),
            });
        }
        let (data, next) = rest.split_at(len);
        options.push(decode_option(code, data, depth, level)?);
        body = next;
        offset += 4 + len;
    }
    Ok(options)
}

fn decode_option(
    code: u16,
    data: &[u8],
    depth: usize,
    level: usize,
) -> Result<DhcpOption, DecodeError> {
    if level > MAX_OPTION_DEPTH {
        return Err(DecodeError::OptionNestingTooDeep);
    }
    let bad_len = || DecodeError::BadOptionLength {
        code,
        len: data.len(),
    };
    let exact = |n: usize| {
        if data.len() == n {
            Ok(())
        } else {
            Err(bad_len())
        }
    };
    let at_least = |n: usize| {
        if data.len() >= n {
            Ok(())
        } else {
            Err(bad_len())
        }
    };
    let u32_exact = || exact(4).map(|()| u32_at(data, 0));
    let sub = |from: usize| decode_options(&data[from..], depth, level + 1);

    let option = match code {
        OPT_CLIENTID => DhcpOption::ClientId(decode_duid(code, data)?),
        OPT_SERVERID => DhcpOption::ServerId(decode_duid(code, data)?),
        OPT_RELAY_ID => DhcpOption::RelayId(decode_duid(code, data)?),
        OPT_IA_NA => {
            at_least(12)?;
            DhcpOption::IaNa(IaNa {
                iaid: u32_at(data, 0),
                t1: u32_at(data, 4),
                t2: u32_at(data, 8),
                options: sub(12)?,
            })
        }
        OPT_IA_TA => {
            at_least(4)?;
            DhcpOption::IaTa(IaTa {
                iaid: u32_at(data, 0),
                options: sub(4)?,
            })
        }
        OPT_IAADDR => {
            at_least(24)?;
            DhcpOption::IaAddr(IaAddr {
                addr: ipv6_at(data, 0),
                preferred: u32_at(data, 16),
                valid: u32_at(data, 20),
                options: sub(24)?,
            })
        }
        OPT_IA_PD => {
            at_least(12)?;
            DhcpOption::IaPd(IaPd {
                iaid: u32_at(data, 0),
                t1: u32_at(data, 4),
                t2: u32_at(data, 8),
                options: sub(12)?,
            })
        }
        OPT_IAPREFIX => {
            at_least(25)?;
            DhcpOption::IaPrefix(IaPrefix {
                preferred: u32_at(data, 0),
                valid: u32_at(data, 4),
                prefix_len: data[8],
                prefix: ipv6_at(data, 9),
                options: sub(25)?,
            })
        }
        OPT_ORO => {
            if !data.len().is_multiple_of(2) {
                return Err(bad_len());
            }
            DhcpOption::Oro(
                data.chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect(),
            )
        }
        OPT_PREFERENCE => {
            exact(1)?;
            DhcpOption::Preference(data[0])
        }
        OPT_ELAPSED_TIME => {
            exact(2)?;
            DhcpOption::ElapsedTime(u16::from_be_bytes([data[0], data[1]]))
        }
        OPT_RELAY_MSG => DhcpOption::RelayMsg(Box::new(decode_relayed(data, depth)?)),
        OPT_AUTH => DhcpOption::Auth(data.to_vec()),
        OPT_UNICAST => {
            exact(16)?;
            DhcpOption::Unicast(ipv6_at(data, 0))
        }
        OPT_STATUS_CODE => {
            at_least(2)?;
            let message = std::str::from_utf8(&data[2..])
                .map_err(|_| DecodeError::BadUtf8 { code })?
                .to_string();
            DhcpOption::StatusCode(StatusCode {
                code: u16::from_be_bytes([data[0], data[1]]),
                message,
            })
        }
        OPT_RAPID_COMMIT => {
            exact(0)?;
            DhcpOption::RapidCommit
        }
        OPT_USER_CLASS => DhcpOption::UserClass(data.to_vec()),
        OPT_VENDOR_CLASS => DhcpOption::VendorClass(data.to_vec()),
        OPT_VENDOR_OPTS => DhcpOption::VendorOpts(data.to_vec()),
        OPT_INTERFACE_ID => DhcpOption::InterfaceId(data.to_vec()),
        OPT_RECONF_MSG => {
            exact(1)?;
            DhcpOption::ReconfMsg(data[0])
        }
        OPT_RECONF_ACCEPT => {
            exact(0)?;
            DhcpOption::ReconfAccept
        }
        OPT_DNS_SERVERS => DhcpOption::DnsServers(decode_addresses(code, data)?),
        OPT_LQ_CLIENT_LINK => DhcpOption::LqClientLink(decode_addresses(code, data)?),
        OPT_DOMAIN_LIST => DhcpOption::DomainList(decode_domain_list(code, data)?),
        OPT_INFORMATION_REFRESH_TIME => DhcpOption::InformationRefreshTime(u32_exact()?),
        OPT_REMOTE_ID => {
            at_least(REMOTE_ID_MIN_LEN)?;
            DhcpOption::RemoteId(RemoteId {
                enterprise: u32_at(data, 0),
                remote_id: data[4..].to_vec(),
            })
        }
        OPT_SUBSCRIBER_ID => DhcpOption::SubscriberId(data.to_vec()),
        OPT_CLIENT_FQDN => DhcpOption::ClientFqdn(data.to_vec()),
        OPT_LQ_QUERY => {
            at_least(17)?;
            DhcpOption::LqQuery(LqQuery {
                query_type: data[0],
                link_address: ipv6_at(data, 1),
                options: sub(17)?,
            })
        }
        OPT_CLIENT_DATA => DhcpOption::ClientData(sub(0)?),
        OPT_CLT_TIME => DhcpOption::CltTime(u32_exact()?),
        OPT_LQ_RELAY_DATA => {
            at_least(16)?;
            DhcpOption::LqRelayData(LqRelayData {
                peer_address: ipv6_at(data, 0),
                relay_message: data[16..].to_vec(),
            })
        }
        OPT_SOL_MAX_RT => DhcpOption::SolMaxRt(u32_exact()?),
        OPT_INF_MAX_RT => DhcpOption::InfMaxRt(u32_exact()?),
        OPT_LQ_BASE_TIME => DhcpOption::LqBaseTime(u32_exact()?),
        OPT_LQ_START_TIME => DhcpOption::LqStartTime(u32_exact()?),
        OPT_LQ_END_TIME => DhcpOption::LqEndTime(u32_exact()?),
        _ => DhcpOption::Unknown {
            code,
            data: data.to_vec(),
        },
    };
    Ok(option)
}

/// Decodes a Relay Message option's body: the packet one relay layer further in.
fn decode_relayed(data: &[u8], depth: usize) -> Result<Packet, DecodeError> {
    if depth + 1 > MAX_RELAY_DEPTH {
        return Err(DecodeError::TooManyRelayHops);
    }
    decode_packet(data, depth + 1).map_err(|err| match err {
        // Keep the hop limit visible as its own drop reason, and wrap only once.
        DecodeError::TooManyRelayHops | DecodeError::RelayMessageMalformed(_) => err,
        other => DecodeError::RelayMessageMalformed(Box::new(other)),
    })
}

fn decode_duid(code: u16, data: &[u8]) -> Result<Duid, DecodeError> {
    let len = data.len();
    if len < DUID_MIN_LEN {
        return Err(DecodeError::DuidTooShort { code, len });
    }
    if len > DUID_MAX_LEN {
        return Err(DecodeError::DuidTooLong { code, len });
    }
    Duid::new(data.to_vec()).map_err(|_| DecodeError::DuidTooLong { code, len })
}

fn decode_addresses(code: u16, data: &[u8]) -> Result<Vec<Ipv6Addr>, DecodeError> {
    if !data.len().is_multiple_of(16) {
        return Err(DecodeError::BadOptionLength {
            code,
            len: data.len(),
        });
    }
    Ok(data.chunks_exact(16).map(|c| ipv6_at(c, 0)).collect())
}

/// Characters accepted in a domain label: letters, digits, hyphen (RFC 1123), and underscore
/// (service labels). Anything else, notably '.', could not be written back as the same text.
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 1035 §3.1 names, uncompressed (RFC 8415 §10), each ending with the root label.
fn decode_domain_list(code: u16, data: &[u8]) -> Result<Vec<String>, DecodeError> {
    let bad = |why: &'static str| DecodeError::BadDomainName { code, why };
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        let mut name = String::new();
        loop {
            let Some(&label_len) = data.get(pos) else {
                return Err(bad("name not terminated by the root label"));
            };
            pos += 1;
            let label_len = usize::from(label_len);
            if label_len == 0 {
                break;
            }
            if label_len > MAX_LABEL_LEN {
                return Err(bad("label longer than 63 bytes or compression pointer"));
            }
            let Some(label) = data.get(pos..pos + label_len) else {
                return Err(bad("label runs past the option"));
            };
            if !label.iter().all(|&b| is_label_byte(b)) {
                return Err(bad(
                    "label has a character other than letter, digit, '-', '_'",
                ));
            }
            if !name.is_empty() {
                name.push('.');
            }
            // All bytes are ASCII (checked above).
            name.extend(label.iter().map(|&b| char::from(b)));
            pos += label_len;
        }
        if pos - start > MAX_NAME_WIRE_LEN {
            return Err(bad("name longer than 255 bytes"));
        }
        if name.is_empty() {
            return Err(bad("root name in a search list"));
        }
        names.push(name);
    }
    Ok(names)
}

pub(super) fn encode_packet(
    packet: &Packet,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    match packet {
        Packet::Message(m) => encode_message(m, buf, depth),
        Packet::Relay(r) => encode_relay(r, buf, depth),
    }
}

pub(super) fn encode_message(
    message: &Message,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    if !is_message_type(message.msg_type) {
        return Err(EncodeError::BadMessageType(message.msg_type));
    }
    buf.push(message.msg_type);
    buf.extend_from_slice(&message.transaction_id);
    encode_options(&message.options, buf, depth, 0)
}

pub(super) fn encode_relay(
    relay: &RelayMessage,
    buf: &mut Vec<u8>,
    depth: usize,
) -> Result<(), EncodeError> {
    if !is_relay_type(relay.msg_type) {
        return Err(EncodeError::BadMessageType(relay.msg_type));
    }
    if depth >= MAX_RELAY_DEPTH {
        return Err(EncodeError::TooManyRelayHops);
    }
    buf.push(relay.msg_type);
    buf.push(relay.hop_count);
    buf.extend_from_slice(&relay.link_address.octets());
    buf.extend_from_slice(&relay.peer_address.octets());
    encode_options(&relay.options, buf, depth, 0)
}

fn encode_options(
    options: &[DhcpOption],
    buf: &mut Vec<u8>,
    depth: usize,
    level: usize,
) -> Result<(), EncodeError> {
    options
        .iter()
        .try_for_each(|o| encode_option(o, buf, depth, level))
}

fn encode_option(
    option: &DhcpOption,
    buf: &mut Vec<u8>,
    depth: usize,
    level: usize,
) -> Result<(), EncodeError> {
    if level > MAX_OPTION_DEPTH {
        return Err(EncodeError::OptionNestingTooDeep);
    }
    let code = option.code();
    buf.extend_from_slice(&code.to_be_bytes());
    let len_at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    let body_at = buf.len();
    let sub =
        |options: &[DhcpOption], buf: &mut Vec<u8>| encode_options(options, buf, depth, level + 1);
    match option {
        DhcpOption::ClientId(d) | DhcpOption::ServerId(d) | DhcpOption::RelayId(d) => {
            buf.extend_from_slice(d.as_bytes())
        }
        DhcpOption::IaNa(ia) => {
            put_u32s(buf, &[ia.iaid, ia.t1, ia.t2]);
            sub(&ia.options, buf)?;
        }
        DhcpOption::IaTa(ia) => {
            put_u32s(buf, &[ia.iaid]);
            sub(&ia.options, buf)?;
        }
        DhcpOption::IaAddr(a) => {
            buf.extend_from_slice(&a.addr.octets());
            put_u32s(buf, &[a.preferred, a.valid]);
            sub(&a.options, buf)?;
        }
        DhcpOption::IaPd(ia) => {
            put_u32s(buf, &[ia.iaid, ia.t1, ia.t2]);
            sub(&ia.options, buf)?;
        }
        DhcpOption::IaPrefix(p) => {
            put_u32s(buf, &[p.preferred, p.valid]);
            buf.push(p.prefix_len);
            buf.extend_from_slice(&p.prefix.octets());
            sub(&p.options, buf)?;
        }
        DhcpOption::Oro(codes) => codes
            .iter()
            .for_each(|c| buf.extend_from_slice(&c.to_be_bytes())),
        DhcpOption::Preference(p) => buf.push(*p),
        DhcpOption::ElapsedTime(t) => buf.extend_from_slice(&t.to_be_bytes()),
        DhcpOption::RelayMsg(inner) => {
            if depth + 1 > MAX_RELAY_DEPTH {
                return Err(EncodeError::TooManyRelayHops);
            }
            encode_packet(inner, buf, depth + 1)?;
        }
        DhcpOption::Unicast(addr) => buf.extend_from_slice(&addr.octets()),
        DhcpOption::StatusCode(s) => {
            buf.extend_from_slice(&s.code.to_be_bytes());
            buf.extend_from_slice(s.message.as_bytes());
        }
        DhcpOption::RapidCommit | DhcpOption::ReconfAccept => {}
        DhcpOption::Auth(raw)
        | DhcpOption::UserClass(raw)
        | DhcpOption::VendorClass(raw)
        | DhcpOption::VendorOpts(raw)
        | DhcpOption::InterfaceId(raw)
        | DhcpOption::SubscriberId(raw)
        | DhcpOption::ClientFqdn(raw)
        | DhcpOption::Unknown { data: raw, .. } => buf.extend_from_slice(raw),
        DhcpOption::ReconfMsg(t) => buf.push(*t),
        DhcpOption::DnsServers(addrs) | DhcpOption::LqClientLink(addrs) => addrs
            .iter()
            .for_each(|a| buf.extend_from_slice(&a.octets())),
        DhcpOption::DomainList(names) => encode_domain_list_into(names, buf)?,
        DhcpOption::InformationRefreshTime(v)
        | DhcpOption::CltTime(v)
        | DhcpOption::SolMaxRt(v)
        | DhcpOption::InfMaxRt(v)
        | DhcpOption::LqBaseTime(v)
        | DhcpOption::LqStartTime(v)
        | DhcpOption::LqEndTime(v) => put_u32s(buf, &[*v]),
        DhcpOption::RemoteId(r) => {
            put_u32s(buf, &[r.enterprise]);
            buf.extend_from_slice(&r.remote_id);
        }
        DhcpOption::LqQuery(q) => {
            buf.push(q.query_type);
            buf.extend_from_slice(&q.link_address.octets());
            sub(&q.options, buf)?;
        }
        DhcpOption::ClientData(options) => sub(options, buf)?,
        DhcpOption::LqRelayData(r) => {
            buf.extend_from_slice(&r.peer_address.octets());
            buf.extend_from_slice(&r.relay_message);
        }
    }
    let len = buf.len() - body_at;
    let Ok(len16) = u16::try_from(len) else {
        return Err(EncodeError::OptionTooLong { code, len });
    };
    buf[len_at..body_at].copy_from_slice(&len16.to_be_bytes());
    Ok(())
}

fn put_u32s(buf: &mut Vec<u8>, values: &[u32]) {
    values
        .iter()
        .for_each(|v| buf.extend_from_slice(&v.to_be_bytes()));
}

/// `names` in DNS wire format (RFC 1035 §3.1, uncompressed): the body of OPTION_DOMAIN_LIST,
/// as the controller sends it and as the fast path is configured to send it.
pub fn encode_domain_list(names: &[String]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_domain_list_into(names, &mut out)?;
    Ok(out)
}

/// Appends the OPTION_DOMAIN_LIST body of `names` to `buf`.
fn encode_domain_list_into(names: &[String], buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    for name in names {
        encode_domain_name(name, buf)?;
    }
    Ok(())
}

/// Writes `name` (dotted text; one trailing dot allowed) in RFC 1035 wire form.
fn encode_domain_name(name: &str, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    let bad = |why: &'static str| EncodeError::BadDomainName {
        name: name.to_string(),
        why,
    };
    let text = name.strip_suffix('.').unwrap_or(name);
    if text.is_empty() {
        return Err(bad("empty name"));
    }
    let start = buf.len();
    for label in text.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad("label longer than 63 bytes"));
        }
        if !label.bytes().all(is_label_byte) {
            return Err(bad(
                "label has a character other than letter, digit, '-', '_'",
            ));
        }
        // Length checked above: at most 63.
        buf.push(label.len() as u8);
        buf.extend_from_slice(label.as_bytes());
    }
    buf.push(0);
    if buf.len() - start > MAX_NAME_WIRE_LEN {
        return Err(bad("name longer than 255 bytes"));
    }
    Ok(())
}
