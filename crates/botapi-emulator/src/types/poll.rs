//! Polls (`Poll`, `PollOption`), as `sendPoll` creates them and votes change them.

use serde::{Deserialize, Serialize};

use super::MessageEntity;

/// A native poll (`Poll`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    /// Unique poll identifier.
    pub id: String,
    /// The question, 1-300 characters.
    pub question: String,
    /// The answer options.
    pub options: Vec<PollOption>,
    /// Users who voted.
    pub total_voter_count: u32,
    /// True once closed.
    pub is_closed: bool,
    /// True when votes are anonymous.
    pub is_anonymous: bool,
    /// `regular` or `quiz`.
    #[serde(rename = "type")]
    pub kind: String,
    /// True when a user may choose several options.
    pub allows_multiple_answers: bool,
    /// The correct option of a quiz (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_option_id: Option<u32>,
    /// What a quiz shows after a wrong answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Entities of `explanation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_entities: Option<Vec<MessageEntity>>,
    /// Seconds the poll stays open after it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_period: Option<u32>,
    /// Unix time when the poll closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_date: Option<i64>,
}

/// One answer option of a poll (`PollOption`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollOption {
    /// The option's text, 1-100 characters.
    pub text: String,
    /// Users who chose it.
    pub voter_count: u32,
}
