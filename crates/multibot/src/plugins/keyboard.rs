//! Inline keyboards as Telegram accepts them: [`check_keyboard`] refuses a button whose `callback_data` is empty
//! or over [`CALLBACK_DATA_LIMIT`] bytes, naming the button, before anything is sent (Telegram would answer 400
//! `BUTTON_DATA_INVALID` and the user would see an error reply instead).

use teloxide_core::types::{InlineKeyboardButtonKind, InlineKeyboardMarkup};

/// Telegram's limit on a button's `callback_data`, in bytes.
pub const CALLBACK_DATA_LIMIT: usize = 64;

/// A keyboard Telegram would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keyboard button {text:?}: callback_data is {bytes} bytes; Telegram takes 1-{CALLBACK_DATA_LIMIT}")]
pub struct KeyboardError {
    /// The button's text.
    pub text: String,
    /// The length of its `callback_data` in bytes.
    pub bytes: usize,
}

/// Checks every button's `callback_data` (1-64 bytes).
pub fn check_keyboard(keyboard: &InlineKeyboardMarkup) -> Result<(), KeyboardError> {
    for button in keyboard.inline_keyboard.iter().flatten() {
        if let InlineKeyboardButtonKind::CallbackData(data) = &button.kind
            && !(1..=CALLBACK_DATA_LIMIT).contains(&data.len())
        {
            return Err(KeyboardError { text: button.text.clone(), bytes: data.len() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use teloxide_core::types::InlineKeyboardButton;

    use super::*;

    #[test]
    fn callback_data_of_1_to_64_bytes_passes_and_the_refusal_names_the_button() {
        let fits = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Ok", "é".repeat(32))]]);
        assert_eq!(check_keyboard(&fits), Ok(()));
        let long = InlineKeyboardMarkup::new([[
            InlineKeyboardButton::callback("Ok", "ok"),
            InlineKeyboardButton::callback("Too long", "x".repeat(65)),
        ]]);
        let error = check_keyboard(&long).unwrap_err();
        assert_eq!(error.to_string(), "keyboard button \"Too long\": callback_data is 65 bytes; Telegram takes 1-64");
        let empty = InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Empty", "")]]);
        assert_eq!(check_keyboard(&empty).unwrap_err().bytes, 0);
    }
}
