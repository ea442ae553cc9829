//! IGMP membership reports (RFC 1112, RFC 2236, RFC 3376) as the kernel sends them on
//! the TUN: which groups a report joins and which it leaves. etherparse decodes the
//! messages; this module only turns a report into membership changes.

use std::net::Ipv4Addr;

use etherparse::checksum::Sum16BitWords;
use etherparse::igmp::ReportGroupRecordType as Record;
use etherparse::IgmpSlice;

/// Why an IGMP message taught nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IgmpError {
    /// The IGMP checksum is wrong.
    #[error("bad IGMP checksum")]
    BadChecksum,
    /// Shorter than its own header or records say.
    #[error("truncated IGMP message")]
    Malformed,
    /// A query, or a type that is no membership report.
    #[error("not an IGMP membership report")]
    NotAReport,
}

/// The membership changes in an IGMP report (`msg`, the whole IP payload): each group
/// named, with `true` when the sender now listens to it and `false` when it left.
/// Groups that are not multicast addresses are left out.
pub fn parse_report(msg: &[u8]) -> Result<Vec<(Ipv4Addr, bool)>, IgmpError> {
    let slice = IgmpSlice::from_slice(msg).map_err(|_| IgmpError::Malformed)?;
    if Sum16BitWords::new().add_slice(msg).ones_complement() != 0 {
        return Err(IgmpError::BadChecksum);
    }
    let mut changes = Vec::new();
    match slice {
        IgmpSlice::MembershipReportV1(report) => {
            changes.push((Ipv4Addr::from(report.group_address().octets), true));
        }
        IgmpSlice::MembershipReportV2(report) => {
            changes.push((Ipv4Addr::from(report.group_address().octets), true));
        }
        IgmpSlice::LeaveGroup(leave) => {
            changes.push((Ipv4Addr::from(leave.group_address().octets), false));
        }
        IgmpSlice::MembershipReportV3(report) => {
            for record in report.group_records() {
                let record = record.map_err(|_| IgmpError::Malformed)?;
                let listening = match record.record_type() {
                    // "Include no source" is how IGMPv3 says "not listening".
                    Record::MODE_IS_INCLUDE | Record::CHANGE_TO_INCLUDE_MODE => {
                        record.num_of_sources() > 0
                    }
                    Record::MODE_IS_EXCLUDE
                    | Record::CHANGE_TO_EXCLUDE_MODE
                    | Record::ALLOW_NEW_SOURCES => true,
                    _ => continue,
                };
                changes.push((Ipv4Addr::from(record.multicast_address()), listening));
            }
        }
        _ => return Err(IgmpError::NotAReport),
    }
    changes.retain(|(group, _)| group.is_multicast());
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `body` with its IGMP checksum filled in (bytes 2–3).
    fn with_checksum(mut body: Vec<u8>) -> Vec<u8> {
        body[2..4].fill(0);
        let sum = Sum16BitWords::new().add_slice(&body).ones_complement();
        // etherparse sums the words in native byte order.
        body[2..4].copy_from_slice(&sum.to_ne_bytes());
        body
    }

    #[test]
    fn v2_report_and_leave() {
        let join = with_checksum(vec![0x16, 0, 0, 0, 239, 1, 2, 3]);
        assert_eq!(
            parse_report(&join),
            Ok(vec![(Ipv4Addr::new(239, 1, 2, 3), true)])
        );
        let leave = with_checksum(vec![0x17, 0, 0, 0, 239, 1, 2, 3]);
        assert_eq!(
            parse_report(&leave),
            Ok(vec![(Ipv4Addr::new(239, 1, 2, 3), false)])
        );
        let mut corrupt = join.clone();
        corrupt[7] ^= 1;
        assert_eq!(parse_report(&corrupt), Err(IgmpError::BadChecksum));
        let query = with_checksum(vec![0x11, 100, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse_report(&query), Err(IgmpError::NotAReport));
        assert_eq!(parse_report(&join[..6]), Err(IgmpError::Malformed));
    }

    #[test]
    fn v3_records_join_and_leave() {
        #[rustfmt::skip]
        let report = with_checksum(vec![
            0x22, 0, 0, 0, 0, 0, 0, 4,
            4, 0, 0, 0, 239, 1, 2, 3,             // change to exclude {}: join
            3, 0, 0, 0, 239, 1, 2, 4,             // change to include {}: leave
            1, 0, 0, 1, 239, 1, 2, 5, 192, 0, 2, 1, // include {192.0.2.1}: listening
            6, 0, 0, 1, 239, 1, 2, 6, 192, 0, 2, 1, // block old sources: no change
        ]);
        assert_eq!(
            parse_report(&report),
            Ok(vec![
                (Ipv4Addr::new(239, 1, 2, 3), true),
                (Ipv4Addr::new(239, 1, 2, 4), false),
                (Ipv4Addr::new(239, 1, 2, 5), true),
            ])
        );
        // A record count beyond the message is malformed.
        let mut short = report.clone();
        short[7] = 5;
        let short = with_checksum(short);
        assert_eq!(parse_report(&short), Err(IgmpError::Malformed));
    }
}
