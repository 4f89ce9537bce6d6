//! Ethernet/IPv6/UDP frames around a DHCPv6 payload: built for BPF_PROG_TEST_RUN (tests, the
//! benchmark, the load generator) and taken apart to check what the fast path sent.

use std::net::Ipv6Addr;

use thiserror::Error;

const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;

/// The addressing of one UDP-over-IPv6 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Udp6Frame {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// VLAN tags outermost first, as (TPID, TCI): 0x8100 for 802.1Q, 0x88a8 for the QinQ outer tag.
    pub vlans: Vec<(u16, u16)>,
    pub src_ip: Ipv6Addr,
    pub dst_ip: Ipv6Addr,
    pub hop_limit: u8,
    /// Traffic class and flow label word after the version nibble (0 for ours).
    pub flow: u32,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame too short")]
    Short,
    #[error("not IPv6 (ethertype {0:#06x})")]
    NotIpv6(u16),
    #[error("not UDP (next header {0})")]
    NotUdp(u8),
    #[error("length fields disagree with the frame")]
    Length,
    #[error("bad UDP checksum")]
    Checksum,
}

impl Udp6Frame {
    /// Encodes the frame with correct lengths and UDP checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(14 + 8 + 48 + self.payload.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for (tpid, tci) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        let udp_len = (8 + self.payload.len()) as u16;
        f.extend_from_slice(&(0x6000_0000u32 | (self.flow & 0x0fff_ffff)).to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.push(IPPROTO_UDP);
        f.push(self.hop_limit);
        f.extend_from_slice(&self.src_ip.octets());
        f.extend_from_slice(&self.dst_ip.octets());
        let udp = f.len();
        f.extend_from_slice(&self.src_port.to_be_bytes());
        f.extend_from_slice(&self.dst_port.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&self.payload);
        let mut csum = udp6_checksum(&self.src_ip, &self.dst_ip, &f[udp..]);
        if csum == 0 {
            csum = 0xffff;
        }
        f[udp + 6..udp + 8].copy_from_slice(&csum.to_be_bytes());
        f
    }

    /// Decodes a frame, checking lengths and the UDP checksum.
    pub fn decode(f: &[u8]) -> Result<Self, FrameError> {
        let get16 = |o: usize| -> Result<u16, FrameError> {
            f.get(o..o + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(FrameError::Short)
        };
        let mut off = 12;
        let mut vlans = Vec::new();
        let mut ethertype = get16(off)?;
        while (ethertype == 0x8100 || ethertype == 0x88a8) && vlans.len() < 2 {
            vlans.push((ethertype, get16(off + 2)?));
            off += 4;
            ethertype = get16(off)?;
        }
        if ethertype != ETH_P_IPV6 {
            return Err(FrameError::NotIpv6(ethertype));
        }
        let ip = off + 2;
        let hdr = f.get(ip..ip + 40).ok_or(FrameError::Short)?;
        if hdr[6] != IPPROTO_UDP {
            return Err(FrameError::NotUdp(hdr[6]));
        }
        let payload_len = u16::from_be_bytes([hdr[4], hdr[5]]) as usize;
        let udp = ip + 40;
        let seg = f.get(udp..udp + payload_len).ok_or(FrameError::Length)?;
        if seg.len() < 8 || u16::from_be_bytes([seg[4], seg[5]]) as usize != payload_len {
            return Err(FrameError::Length);
        }
        let src_ip = Ipv6Addr::from(<[u8; 16]>::try_from(&hdr[8..24]).unwrap());
        let dst_ip = Ipv6Addr::from(<[u8; 16]>::try_from(&hdr[24..40]).unwrap());
        if udp6_checksum(&src_ip, &dst_ip, seg) != 0 {
            return Err(FrameError::Checksum);
        }
        Ok(Udp6Frame {
            dst_mac: f[0..6].try_into().unwrap(),
            src_mac: f[6..12].try_into().unwrap(),
            vlans,
            src_ip,
            dst_ip,
            hop_limit: hdr[7],
            flow: u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) & 0x0fff_ffff,
            src_port: u16::from_be_bytes([seg[0], seg[1]]),
            dst_port: u16::from_be_bytes([seg[2], seg[3]]),
            payload: seg[8..].to_vec(),
        })
    }
}

/// The UDP checksum over the IPv6 pseudo-header and `segment` (0 when `segment` carries a
/// correct checksum).
pub fn udp6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, segment: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = if chunk.len() == 2 {
                u16::from_be_bytes([chunk[0], chunk[1]])
            } else {
                (chunk[0] as u16) << 8
            };
            sum += word as u64;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(segment.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_UDP]);
    add(segment);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Udp6Frame {
        Udp6Frame {
            dst_mac: [0x33, 0x33, 0, 1, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 1],
            vlans: vec![(0x88a8, 100), (0x8100, 200)],
            src_ip: "fe80::1".parse().unwrap(),
            dst_ip: "ff02::1:2".parse().unwrap(),
            hop_limit: 1,
            flow: 0,
            src_port: 546,
            dst_port: 547,
            payload: vec![1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn round_trip_with_vlans_and_odd_payload() {
        let f = sample();
        assert_eq!(Udp6Frame::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn corrupt_checksum_is_detected() {
        let mut bytes = sample().encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(Udp6Frame::decode(&bytes), Err(FrameError::Checksum));
    }
}
