//! `form`: a multi-step form on the FSM: `/form` asks for a name, then an age, then sums up; `/cancel` leaves it.
//! Commands are never answers: during the form they go to their own handlers.

use std::sync::Arc;

use crate::plugins::{Ctx, Handlers, MessageFilter};

const WAITING_FOR_NAME: &str = "form:waiting_for_name";
const WAITING_FOR_AGE: &str = "form:waiting_for_age";

builtin_plugin! {
    Form, "form", "Multi-step form example";

    fn setup_handlers(&self, handlers: &mut Handlers<'_, Self>) {
        handlers
            .command("form", "Fill in a short form", Form::start)
            .command("cancel", "Leave the form", Form::cancel)
            .message(MessageFilter::text().not_command().state(WAITING_FOR_NAME), Form::name)
            .message(MessageFilter::text().not_command().state(WAITING_FOR_AGE), Form::age);
    }
}

impl Form {
    async fn start(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        cx.fsm().set_state(Some(WAITING_FOR_NAME)).await?;
        cx.reply("What's your name?").await?;
        Ok(())
    }

    async fn cancel(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        if cx.fsm().state().await?.is_none() {
            cx.reply("There is nothing to cancel.").await?;
            return Ok(());
        }
        cx.fsm().clear().await?;
        cx.reply("Cancelled.").await?;
        Ok(())
    }

    async fn name(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        cx.fsm().update_data("name", cx.text().unwrap_or_default()).await?;
        cx.fsm().set_state(Some(WAITING_FOR_AGE)).await?;
        cx.reply("How old are you?").await?;
        Ok(())
    }

    async fn age(self: Arc<Self>, cx: Ctx) -> anyhow::Result<()> {
        let data = cx.fsm().data().await?;
        let name = data.get("name").and_then(|v| v.as_str()).unwrap_or("stranger").to_owned();
        let age = cx.text().unwrap_or_default().to_owned();
        cx.fsm().clear().await?;
        cx.reply(format!("Hello {name}, you are {age} years old!")).plain().await?;
        Ok(())
    }
}
