//! The DIMSE layer that dicom-rs does not have: command sets (always implicit VR
//! little endian, PS3.7 §6.3.1), the C-ECHO and C-STORE messages we serve and
//! send, and the status codes we answer with.
//!
//! The decoder is the first thing that touches bytes from the network after
//! PDV reassembly, so it is written to reject, never to panic: every length is
//! checked against what is left, and the whole command set is bounded by the
//! caller (see [`MAX_COMMAND_SET_LEN`]).

use std::fmt;

use crate::dicom::status::DimseStatus;

/// A command set is a few hundred bytes; anything near this is hostile.
pub const MAX_COMMAND_SET_LEN: usize = 64 * 1024;

/// CommandField (0000,0100) values for the DIMSE-C services this node speaks (PS3.7 E.1).
pub mod command_field {
    /// C-STORE request: a data set follows with the object to store.
    pub const C_STORE_RQ: u16 = 0x0001;
    /// C-STORE response.
    pub const C_STORE_RSP: u16 = 0x8001;
    /// C-ECHO request (verification).
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// C-ECHO response.
    pub const C_ECHO_RSP: u16 = 0x8030;
}

/// CommandDataSetType value that means "no data set follows" (PS3.7 E.1).
pub const NO_DATA_SET: u16 = 0x0101;

mod tag {
    pub const GROUP_LENGTH: u16 = 0x0000;
    pub const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
    pub const COMMAND_FIELD: u16 = 0x0100;
    pub const MESSAGE_ID: u16 = 0x0110;
    pub const MESSAGE_ID_BEING_RESPONDED_TO: u16 = 0x0120;
    pub const MOVE_DESTINATION: u16 = 0x0600;
    pub const PRIORITY: u16 = 0x0700;
    pub const COMMAND_DATA_SET_TYPE: u16 = 0x0800;
    pub const STATUS: u16 = 0x0900;
    pub const ERROR_COMMENT: u16 = 0x0902;
    pub const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
    pub const MOVE_ORIGINATOR_AE: u16 = 0x1030;
    pub const MOVE_ORIGINATOR_MESSAGE_ID: u16 = 0x1031;
}

/// Why a command set was rejected while decoding; the association is aborted on any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The command set is longer than `MAX_COMMAND_SET_LEN` (length in bytes).
    TooLong(usize),
    /// Fewer bytes remained than an element header or value needs.
    Truncated {
        /// Byte offset in the command set where the element started.
        at: usize,
    },
    /// An element outside group 0000 appeared in the command set.
    NotGroupZero {
        /// The offending group number.
        group: u16,
        /// Byte offset of the element in the command set.
        at: usize,
    },
    /// An element's value length does not fit its VR (for example a US element that is not 2 bytes).
    BadValueLength {
        /// Element number within group 0000.
        element: u16,
        /// The declared value length in bytes.
        len: u32,
    },
    /// A required element (named) is absent for this command.
    MissingElement(&'static str),
    /// A text element (UI, AE, LO) holds non-ASCII or control characters.
    NotText {
        /// Element number within group 0000.
        element: u16,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::TooLong(n) => write!(f, "command set of {n} bytes exceeds the limit"),
            CommandError::Truncated { at } => write!(f, "command set truncated at byte {at}"),
            CommandError::NotGroupZero { group, at } => {
                write!(
                    f,
                    "element of group {group:04X} in a command set at byte {at}"
                )
            }
            CommandError::BadValueLength { element, len } => {
                write!(f, "element (0000,{element:04X}) has invalid length {len}")
            }
            CommandError::MissingElement(name) => write!(f, "command set lacks {name}"),
            CommandError::NotText { element } => {
                write!(f, "element (0000,{element:04X}) is not ASCII text")
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// A decoded command set. Only the elements DIMSE-C services use are kept;
/// unknown group-0000 elements are skipped (they are legal in retired usage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// CommandField (0000,0100): which message this is; see `command_field`.
    pub command_field: u16,
    /// MessageID (0000,0110); present on requests.
    pub message_id: Option<u16>,
    /// MessageIDBeingRespondedTo (0000,0120); present on responses.
    pub message_id_being_responded_to: Option<u16>,
    /// AffectedSOPClassUID (0000,0002), with NUL/space padding removed.
    pub affected_sop_class_uid: Option<String>,
    /// AffectedSOPInstanceUID (0000,1000); None for C-ECHO.
    pub affected_sop_instance_uid: Option<String>,
    /// Priority (0000,0700): 0 medium, 1 high, 2 low; None when absent.
    pub priority: Option<u16>,
    /// CommandDataSetType (0000,0800); `NO_DATA_SET` (0x0101) means no data set follows.
    pub data_set_type: u16,
    /// Status (0000,0900); present on responses.
    pub status: Option<DimseStatus>,
    /// ErrorComment (0000,0902): free text accompanying a failure status; cut to 64 characters (LO) when encoded.
    pub error_comment: Option<String>,
    /// MoveOriginatorApplicationEntityTitle (0000,1030) when this C-STORE is a sub-operation of a C-MOVE.
    pub move_originator_ae: Option<String>,
    /// MoveOriginatorMessageID (0000,1031) of the C-MOVE that caused this C-STORE.
    pub move_originator_message_id: Option<u16>,
}

impl Command {
    /// True when a data set follows this command (CommandDataSetType is not 0x0101).
    pub fn has_data_set(&self) -> bool {
        self.data_set_type != NO_DATA_SET
    }
}

fn read_u16(v: &[u8], element: u16) -> Result<u16, CommandError> {
    match v {
        [a, b] => Ok(u16::from_le_bytes([*a, *b])),
        _ => Err(CommandError::BadValueLength {
            element,
            len: v.len() as u32,
        }),
    }
}

/// UI/AE/LO values are padded with NUL or space to even length.
fn read_text(v: &[u8], element: u16) -> Result<String, CommandError> {
    let s = std::str::from_utf8(v).map_err(|_| CommandError::NotText { element })?;
    if s.chars()
        .any(|c| !c.is_ascii() || (c.is_ascii_control() && c != '\0'))
    {
        return Err(CommandError::NotText { element });
    }
    Ok(s.trim_end_matches(['\0', ' ']).trim_start().to_string())
}

/// Decode a complete command set (all command fragments joined).
pub fn decode_command(bytes: &[u8]) -> Result<Command, CommandError> {
    if bytes.len() > MAX_COMMAND_SET_LEN {
        return Err(CommandError::TooLong(bytes.len()));
    }
    let mut cmd = Command {
        data_set_type: NO_DATA_SET,
        ..Command::default()
    };
    let mut field = None;
    let mut data_set_type = None;
    let mut pos = 0usize;
    while pos < bytes.len() {
        let header = bytes
            .get(pos..pos + 8)
            .ok_or(CommandError::Truncated { at: pos })?;
        let group = u16::from_le_bytes([header[0], header[1]]);
        let element = u16::from_le_bytes([header[2], header[3]]);
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if group != 0 {
            return Err(CommandError::NotGroupZero { group, at: pos });
        }
        let start = pos + 8;
        let end = start
            .checked_add(len as usize)
            .filter(|end| *end <= bytes.len())
            .ok_or(CommandError::BadValueLength { element, len })?;
        let value = &bytes[start..end];
        match element {
            tag::GROUP_LENGTH => {}
            tag::AFFECTED_SOP_CLASS_UID => {
                cmd.affected_sop_class_uid = Some(read_text(value, element)?)
            }
            tag::COMMAND_FIELD => field = Some(read_u16(value, element)?),
            tag::MESSAGE_ID => cmd.message_id = Some(read_u16(value, element)?),
            tag::MESSAGE_ID_BEING_RESPONDED_TO => {
                cmd.message_id_being_responded_to = Some(read_u16(value, element)?)
            }
            tag::PRIORITY => cmd.priority = Some(read_u16(value, element)?),
            tag::COMMAND_DATA_SET_TYPE => data_set_type = Some(read_u16(value, element)?),
            tag::STATUS => cmd.status = Some(DimseStatus(read_u16(value, element)?)),
            tag::ERROR_COMMENT => cmd.error_comment = Some(read_text(value, element)?),
            tag::AFFECTED_SOP_INSTANCE_UID => {
                cmd.affected_sop_instance_uid = Some(read_text(value, element)?)
            }
            tag::MOVE_ORIGINATOR_AE => cmd.move_originator_ae = Some(read_text(value, element)?),
            tag::MOVE_ORIGINATOR_MESSAGE_ID => {
                cmd.move_originator_message_id = Some(read_u16(value, element)?)
            }
            tag::MOVE_DESTINATION => {}
            _ => {}
        }
        pos = end;
    }
    cmd.command_field = field.ok_or(CommandError::MissingElement("CommandField"))?;
    cmd.data_set_type = data_set_type.ok_or(CommandError::MissingElement("CommandDataSetType"))?;
    Ok(cmd)
}

/// Builds a command set in implicit VR little endian with its group length.
#[derive(Default)]
struct CommandWriter {
    body: Vec<u8>,
}

impl CommandWriter {
    fn element(&mut self, element: u16, value: &[u8]) {
        self.body.extend_from_slice(&0u16.to_le_bytes());
        self.body.extend_from_slice(&element.to_le_bytes());
        self.body
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.body.extend_from_slice(value);
    }

    fn u16(&mut self, element: u16, v: u16) {
        self.element(element, &v.to_le_bytes());
    }

    /// UIDs pad with NUL, other text with space (PS3.5 6.2).
    fn text(&mut self, element: u16, v: &str, pad: u8) {
        let mut bytes = v.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(pad);
        }
        self.element(element, &bytes);
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 12);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&tag::GROUP_LENGTH.to_le_bytes());
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// Encode a command; elements are written in ascending tag order as required.
pub fn encode_command(cmd: &Command) -> Vec<u8> {
    let mut w = CommandWriter::default();
    if let Some(uid) = &cmd.affected_sop_class_uid {
        w.text(tag::AFFECTED_SOP_CLASS_UID, uid, 0);
    }
    w.u16(tag::COMMAND_FIELD, cmd.command_field);
    if let Some(id) = cmd.message_id {
        w.u16(tag::MESSAGE_ID, id);
    }
    if let Some(id) = cmd.message_id_being_responded_to {
        w.u16(tag::MESSAGE_ID_BEING_RESPONDED_TO, id);
    }
    if let Some(p) = cmd.priority {
        w.u16(tag::PRIORITY, p);
    }
    w.u16(tag::COMMAND_DATA_SET_TYPE, cmd.data_set_type);
    if let Some(s) = cmd.status {
        w.u16(tag::STATUS, s.code());
    }
    if let Some(c) = &cmd.error_comment {
        // LO is at most 64 characters.
        let c: String = c
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(64)
            .collect();
        w.text(tag::ERROR_COMMENT, &c, b' ');
    }
    if let Some(uid) = &cmd.affected_sop_instance_uid {
        w.text(tag::AFFECTED_SOP_INSTANCE_UID, uid, 0);
    }
    if let Some(ae) = &cmd.move_originator_ae {
        w.text(tag::MOVE_ORIGINATOR_AE, ae, b' ');
    }
    if let Some(id) = cmd.move_originator_message_id {
        w.u16(tag::MOVE_ORIGINATOR_MESSAGE_ID, id);
    }
    w.finish()
}

/// Builds the C-ECHO-RSP answering `message_id`, status Success; the SOP class defaults to Verification.
pub fn c_echo_rsp(message_id: u16, sop_class: Option<&str>) -> Command {
    Command {
        command_field: command_field::C_ECHO_RSP,
        message_id_being_responded_to: Some(message_id),
        affected_sop_class_uid: Some(
            sop_class
                .unwrap_or(crate::dicom::uids::VERIFICATION)
                .to_string(),
        ),
        data_set_type: NO_DATA_SET,
        status: Some(DimseStatus::SUCCESS),
        ..Command::default()
    }
}

/// Builds a C-ECHO-RQ (Verification SOP class) with the given MessageID.
pub fn c_echo_rq(message_id: u16) -> Command {
    Command {
        command_field: command_field::C_ECHO_RQ,
        message_id: Some(message_id),
        affected_sop_class_uid: Some(crate::dicom::uids::VERIFICATION.to_string()),
        data_set_type: NO_DATA_SET,
        ..Command::default()
    }
}

/// Builds a C-STORE-RQ at medium priority for one instance; the data set is sent after it.
pub fn c_store_rq(message_id: u16, sop_class: &str, sop_instance: &str) -> Command {
    Command {
        command_field: command_field::C_STORE_RQ,
        message_id: Some(message_id),
        affected_sop_class_uid: Some(sop_class.to_string()),
        affected_sop_instance_uid: Some(sop_instance.to_string()),
        priority: Some(0),
        // Any value other than 0x0101 means a data set follows.
        data_set_type: 0x0000,
        ..Command::default()
    }
}

/// Builds the C-STORE-RSP answering `message_id` with `status` and an optional ErrorComment.
pub fn c_store_rsp(
    message_id: u16,
    sop_class: Option<&str>,
    sop_instance: Option<&str>,
    status: DimseStatus,
    comment: Option<&str>,
) -> Command {
    Command {
        command_field: command_field::C_STORE_RSP,
        message_id_being_responded_to: Some(message_id),
        affected_sop_class_uid: sop_class.map(str::to_string),
        affected_sop_instance_uid: sop_instance.map(str::to_string),
        data_set_type: NO_DATA_SET,
        status: Some(status),
        error_comment: comment.map(str::to_string),
        ..Command::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_request_round_trips() {
        let rq = c_store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5");
        let decoded = decode_command(&encode_command(&rq)).unwrap();
        assert_eq!(decoded, rq);
        assert!(decoded.has_data_set());
    }

    #[test]
    fn response_round_trips_with_odd_length_comment() {
        let rsp = c_store_rsp(
            9,
            Some("1.2.3"),
            Some("1.2.33"),
            DimseStatus(0xC000),
            Some("bad"),
        );
        let decoded = decode_command(&encode_command(&rsp)).unwrap();
        assert_eq!(decoded.status, Some(DimseStatus::CANNOT_UNDERSTAND));
        assert_eq!(decoded.error_comment.as_deref(), Some("bad"));
        assert_eq!(decoded.affected_sop_instance_uid.as_deref(), Some("1.2.33"));
        assert!(!decoded.has_data_set());
    }

    #[test]
    fn group_length_is_the_body_length() {
        let bytes = encode_command(&c_echo_rq(1));
        let gl = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        assert_eq!(gl, bytes.len() - 12);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        let mut bytes = encode_command(&c_echo_rq(1));
        // Claim 4 GiB for the first value.
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_command(&bytes).is_err());
        assert!(decode_command(&bytes[..5]).is_err());
        assert!(decode_command(&[]).is_err());
        let big = vec![0u8; MAX_COMMAND_SET_LEN + 1];
        assert_eq!(
            decode_command(&big),
            Err(CommandError::TooLong(MAX_COMMAND_SET_LEN + 1))
        );
    }

    #[test]
    fn data_set_elements_in_a_command_are_rejected() {
        let mut bytes = encode_command(&c_echo_rq(1));
        bytes.extend_from_slice(&[0x08, 0x00, 0x18, 0x00, 0x02, 0x00, 0x00, 0x00, b'1', 0]);
        assert!(matches!(
            decode_command(&bytes),
            Err(CommandError::NotGroupZero { group: 8, .. })
        ));
    }
}
