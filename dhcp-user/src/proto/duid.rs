//! DHCP Unique Identifier (RFC 8415 §11).

use std::fmt;
use std::str::FromStr;

/// DUID-LLT: link-layer address plus time (RFC 8415 §11.2).
pub const DUID_LLT: u16 = 1;
/// DUID-EN: enterprise number plus identifier (RFC 8415 §11.3).
pub const DUID_EN: u16 = 2;
/// DUID-LL: link-layer address (RFC 8415 §11.4).
pub const DUID_LL: u16 = 3;
/// DUID-UUID (RFC 8415 §11.5, RFC 6355).
pub const DUID_UUID: u16 = 4;

/// The DUID length bounds, shared with the fast path (which must refuse what the decoder refuses).
pub use dhcp_common::dhcpv6::{DUID_MAX_LEN, DUID_MIN_LEN};

/// Why a byte string or text is not a DUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuidError {
    #[error("DUID of {len} bytes is shorter than {DUID_MIN_LEN} (type code plus identifier)")]
    TooShort { len: usize },
    #[error("DUID of {len} bytes is longer than {DUID_MAX_LEN}")]
    TooLong { len: usize },
    #[error("DUID text is not colon-separated or plain hex: {0}")]
    BadText(String),
}

/// A DUID, as it appears on the wire (type code included). Its length is always within
/// `DUID_MIN_LEN..=DUID_MAX_LEN`; the constructors enforce it.
///
/// Text form (Display, FromStr, serde): colon-separated lowercase hex, e.g. `00:03:00:01:02:...`;
/// FromStr also takes plain hex (`000300010203...`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duid(Vec<u8>);

impl Duid {
    /// A DUID from its wire bytes (type code first).
    pub fn new(bytes: Vec<u8>) -> Result<Self, DuidError> {
        match bytes.len() {
            len if len < DUID_MIN_LEN => Err(DuidError::TooShort { len }),
            len if len > DUID_MAX_LEN => Err(DuidError::TooLong { len }),
            _ => Ok(Duid(bytes)),
        }
    }

    /// DUID-LLT from a hardware type (IANA ARP hardware type, 1 = Ethernet), a time (seconds
    /// since 2000-01-01 UTC, mod 2^32) and a link-layer address.
    pub fn llt(hw_type: u16, time: u32, link_layer_addr: &[u8]) -> Result<Self, DuidError> {
        let mut bytes = Vec::with_capacity(8 + link_layer_addr.len());
        bytes.extend_from_slice(&DUID_LLT.to_be_bytes());
        bytes.extend_from_slice(&hw_type.to_be_bytes());
        bytes.extend_from_slice(&time.to_be_bytes());
        bytes.extend_from_slice(link_layer_addr);
        Duid::new(bytes)
    }

    /// DUID-LL from a hardware type and a link-layer address.
    pub fn ll(hw_type: u16, link_layer_addr: &[u8]) -> Result<Self, DuidError> {
        let mut bytes = Vec::with_capacity(4 + link_layer_addr.len());
        bytes.extend_from_slice(&DUID_LL.to_be_bytes());
        bytes.extend_from_slice(&hw_type.to_be_bytes());
        bytes.extend_from_slice(link_layer_addr);
        Duid::new(bytes)
    }

    /// DUID-EN from an IANA private enterprise number and an identifier.
    pub fn en(enterprise: u32, identifier: &[u8]) -> Result<Self, DuidError> {
        let mut bytes = Vec::with_capacity(6 + identifier.len());
        bytes.extend_from_slice(&DUID_EN.to_be_bytes());
        bytes.extend_from_slice(&enterprise.to_be_bytes());
        bytes.extend_from_slice(identifier);
        Duid::new(bytes)
    }

    /// DUID-UUID from a 16-byte UUID.
    pub fn uuid(uuid: [u8; 16]) -> Self {
        let mut bytes = Vec::with_capacity(18);
        bytes.extend_from_slice(&DUID_UUID.to_be_bytes());
        bytes.extend_from_slice(&uuid);
        Duid(bytes)
    }

    /// The DUID type code (first two bytes).
    pub fn duid_type(&self) -> u16 {
        u16::from_be_bytes([self.0[0], self.0[1]])
    }

    /// The wire bytes, type code included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Number of wire bytes (never 0).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl TryFrom<Vec<u8>> for Duid {
    type Error = DuidError;
    fn try_from(bytes: Vec<u8>) -> Result<Self, DuidError> {
        Duid::new(bytes)
    }
}

impl TryFrom<&[u8]> for Duid {
    type Error = DuidError;
    fn try_from(bytes: &[u8]) -> Result<Self, DuidError> {
        Duid::new(bytes.to_vec())
    }
}

impl AsRef<[u8]> for Duid {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Duid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Duid {
    type Err = DuidError;

    fn from_str(s: &str) -> Result<Self, DuidError> {
        let text = s.trim();
        let bad = || DuidError::BadText(text.to_string());
        let bytes = if text.contains(':') {
            text.split(':')
                .map(|group| {
                    if group.len() == 2 {
                        u8::from_str_radix(group, 16).map_err(|_| bad())
                    } else {
                        Err(bad())
                    }
                })
                .collect::<Result<Vec<u8>, _>>()?
        } else {
            hex::decode(text).map_err(|_| bad())?
        };
        Duid::new(bytes)
    }
}

impl serde::Serialize for Duid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llt_layout_and_text_round_trip() {
        let duid = Duid::llt(1, 0x0102_0304, &[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]).unwrap();
        assert_eq!(
            duid.as_bytes(),
            &[0, 1, 0, 1, 1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
        );
        assert_eq!(duid.duid_type(), DUID_LLT);
        let text = duid.to_string();
        assert_eq!(text, "00:01:00:01:01:02:03:04:aa:bb:cc:dd:ee:ff");
        assert_eq!(text.parse::<Duid>().unwrap(), duid);
        assert_eq!(
            "00010001010203 04aabbccddeeff"
                .replace(' ', "")
                .parse::<Duid>()
                .unwrap(),
            duid
        );
        assert_eq!(
            "00:01:00:01:01:02:03:04:AA:BB:CC:DD:EE:FF"
                .parse::<Duid>()
                .unwrap(),
            duid
        );
    }

    #[test]
    fn ll_en_uuid_layouts() {
        let ll = Duid::ll(1, &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(ll.as_bytes(), &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]);
        let en = Duid::en(9, &[0xde, 0xad]).unwrap();
        assert_eq!(en.as_bytes(), &[0, 2, 0, 0, 0, 9, 0xde, 0xad]);
        let uuid = Duid::uuid([7; 16]);
        assert_eq!(uuid.len(), 18);
        assert_eq!(uuid.duid_type(), DUID_UUID);
    }

    #[test]
    fn length_limits() {
        assert_eq!(Duid::new(vec![0, 1]), Err(DuidError::TooShort { len: 2 }));
        assert!(Duid::new(vec![0; DUID_MAX_LEN]).is_ok());
        assert_eq!(
            Duid::new(vec![0; DUID_MAX_LEN + 1]),
            Err(DuidError::TooLong {
                len: DUID_MAX_LEN + 1
            })
        );
        assert!(Duid::ll(1, &[0; 127]).is_err());
    }

    #[test]
    fn bad_text_is_rejected() {
        for text in [
            "",
            "0:01:02",
            "00:01:0g",
            "000",
            "zz0102",
            "00::01:02",
            "00:01:02:",
        ] {
            assert!(text.parse::<Duid>().is_err(), "{text:?} parsed");
        }
    }
}
