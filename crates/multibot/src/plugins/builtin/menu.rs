//! `menu`: an inline keyboard; a click is answered and the message edited, Cancel deletes it.

use std::sync::Arc;

use teloxide_core::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use crate::plugins::{CallbackFilter, Ctx, Handlers};

builtin_plugin! {
    Menu, "menu", "Interactive menu example";

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers
            .command("menu", "Show a menu", Menu::show)
            .callback_query(CallbackFilter::prefix("opt_"), Menu::option)
            .callback_query(CallbackFilter::data("cancel"), Menu::cancel);
    }
}

impl Menu {
    async fn show(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let keyboard = InlineKeyboardMarkup::new([
            vec![
                InlineKeyboardButton::callback("Option 1", "opt_1"),
                InlineKeyboardButton::callback("Option 2", "opt_2"),
            ],
            vec![InlineKeyboardButton::callback("Cancel", "cancel")],
        ]);
        cx.reply("Choose an option:").keyboard(keyboard).await?;
        Ok(())
    }

    async fn option(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let option = cx.callback_data().unwrap_or_default().trim_start_matches("opt_").to_owned();
        cx.answer_callback(Some(&format!("You selected option {option}"))).await?;
        cx.edit_text(format!("Selected: Option {option}"), None).await?;
        Ok(())
    }

    async fn cancel(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        cx.answer_callback(Some("Cancelled")).await?;
        cx.delete_message().await?;
        Ok(())
    }
}
