//! Requests as Slack sends them to jitbot: the form body of a slash command for
//! `/slack/commands`, and of a `block_actions` button click (on a message or in a
//! view), a modal's `view_submission`, or the `block_suggestion` of someone typing
//! in a select, for `/slack/interactions`; the same payloads
//! travel inside Socket Mode envelopes.
//! Whatever plays Slack's inbound half (the playground, the tests, the benches) builds
//! its bodies here and signs them with [`super::signature::SignedHeaders`], so all of
//! them send what the handlers are written against. jitbot itself only reads these.
//!
//! Every field is Slack's own; a value that jitbot does not read (`token`,
//! `trigger_id`, `api_app_id`, ...) is still sent, so the handlers see a whole request.

use serde_json::{Value, json};

/// The `content-type` of both bodies.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A slash command typed in a channel.
#[derive(Clone, Debug)]
pub struct SlashCommand<'a> {
    /// The legacy verification token Slack still sends (jitbot checks the signature).
    pub token: &'a str,
    pub team_id: &'a str,
    pub team_domain: &'a str,
    pub channel_id: &'a str,
    pub channel_name: &'a str,
    /// Who typed it: the requester.
    pub user_id: &'a str,
    pub user_name: &'a str,
    /// The command itself, e.g. `/jit`.
    pub command: &'a str,
    /// What follows the command, e.g. `request payments-db 30m INC-4411 replica lag`.
    pub text: &'a str,
    /// Where the answers that come after the ack go.
    pub response_url: &'a str,
    pub trigger_id: &'a str,
}

impl SlashCommand<'_> {
    /// The command as a Socket Mode envelope's `payload` carries it: the form's
    /// fields as one JSON object.
    pub fn payload(&self) -> Value {
        let fields: serde_json::Map<String, Value> = self
            .fields()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        Value::Object(fields)
    }

    /// The form body, fields in the order Slack sends them.
    pub fn form(&self) -> String {
        form(&self.fields())
    }

    fn fields(&self) -> [(&'static str, &str); 11] {
        [
            ("token", self.token),
            ("team_id", self.team_id),
            ("team_domain", self.team_domain),
            ("channel_id", self.channel_id),
            ("channel_name", self.channel_name),
            ("user_id", self.user_id),
            ("user_name", self.user_name),
            ("command", self.command),
            ("text", self.text),
            ("response_url", self.response_url),
            ("trigger_id", self.trigger_id),
        ]
    }
}

/// A click on a button of a message jitbot posted (an approval card, say).
#[derive(Clone, Debug)]
pub struct ButtonClick<'a> {
    pub team_id: &'a str,
    pub team_domain: &'a str,
    /// Who clicked: the approver, say.
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub api_app_id: &'a str,
    /// The channel of the message, and its `ts`: which card was clicked.
    pub channel_id: &'a str,
    pub channel_name: &'a str,
    pub message_ts: &'a str,
    pub trigger_id: &'a str,
    /// Where the answers to the click go.
    pub response_url: &'a str,
    /// The button, as jitbot's Block Kit named it.
    pub action_id: &'a str,
    pub block_id: &'a str,
    pub value: &'a str,
    /// When it was clicked, as Slack writes it (`1700000001.000200`).
    pub action_ts: &'a str,
}

impl ButtonClick<'_> {
    /// The interaction as JSON (a Socket Mode envelope's `payload`).
    pub fn payload(&self) -> Value {
        let team = (self.team_id, self.team_domain);
        let user = (self.user_id, self.user_name);
        let rest = json!({
            "container": {
                "type": "message",
                "message_ts": self.message_ts,
                "channel_id": self.channel_id,
                "is_ephemeral": false,
            },
            "trigger_id": self.trigger_id,
            "channel": { "id": self.channel_id, "name": self.channel_name },
            "response_url": self.response_url,
            "actions": [button(self.action_id, self.block_id, self.value, self.action_ts)],
        });
        interaction("block_actions", team, user, self.api_app_id, rest)
    }
}

/// A click on a button in a view: a modal, or the App Home (`view.type` says which).
/// There is no `response_url`: answers go to the view itself or elsewhere.
#[derive(Clone, Debug)]
pub struct ViewClick<'a> {
    pub team_id: &'a str,
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub api_app_id: &'a str,
    pub trigger_id: &'a str,
    /// The view as Slack has it (with its `id` and `hash`).
    pub view: &'a Value,
    pub action_id: &'a str,
    pub block_id: &'a str,
    pub value: &'a str,
    pub action_ts: &'a str,
}

impl ViewClick<'_> {
    /// The interaction as JSON (a Socket Mode envelope's `payload`).
    pub fn payload(&self) -> Value {
        let (team, user) = ((self.team_id, DOMAIN), (self.user_id, self.user_name));
        let rest = json!({
            "container": { "type": "view", "view_id": self.view["id"] },
            "trigger_id": self.trigger_id,
            "view": self.view,
            "actions": [button(self.action_id, self.block_id, self.value, self.action_ts)],
        });
        interaction("block_actions", team, user, self.api_app_id, rest)
    }
}

/// A modal submitted: the view as it was open, and what the person entered, as
/// Slack's `state.values` (`{block_id: {action_id: {type, value | selected_option}}}`).
#[derive(Clone, Debug)]
pub struct ViewSubmission<'a> {
    pub team_id: &'a str,
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub api_app_id: &'a str,
    pub trigger_id: &'a str,
    /// The view as Slack has it (with its `id`, `hash`, `callback_id` and
    /// `private_metadata`).
    pub view: &'a Value,
    pub values: &'a Value,
}

impl ViewSubmission<'_> {
    /// The interaction as JSON (a Socket Mode envelope's `payload`).
    pub fn payload(&self) -> Value {
        let mut view = self.view.clone();
        view["state"] = json!({ "values": self.values });
        if view.get("team_id").is_none() {
            view["team_id"] = json!(self.team_id);
        }
        if view.get("hash").is_none() {
            view["hash"] = json!("1.1");
        }
        let (team, user) = ((self.team_id, DOMAIN), (self.user_id, self.user_name));
        let rest = json!({
            "token": "legacy",
            "trigger_id": self.trigger_id,
            "view": view,
            "response_urls": [],
            "is_enterprise_install": false,
        });
        interaction("view_submission", team, user, self.api_app_id, rest)
    }
}

/// Someone typing in an `external_select` of an open modal: Slack asks for the
/// choices that match (`block_suggestion`) and shows the answer's options.
#[derive(Clone, Debug)]
pub struct BlockSuggestion<'a> {
    pub team_id: &'a str,
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub api_app_id: &'a str,
    /// The modal as Slack has it (with its `id` and `hash`).
    pub view: &'a Value,
    /// The select being typed in.
    pub action_id: &'a str,
    pub block_id: &'a str,
    /// What was typed so far.
    pub value: &'a str,
}

impl BlockSuggestion<'_> {
    /// The interaction as JSON (a Socket Mode envelope's `payload`).
    pub fn payload(&self) -> Value {
        let (team, user) = ((self.team_id, DOMAIN), (self.user_id, self.user_name));
        let rest = json!({
            "token": "legacy",
            "container": { "type": "view", "view_id": self.view["id"] },
            "view": self.view,
            "action_id": self.action_id,
            "block_id": self.block_id,
            "value": self.value,
            "action_ts": "1700000002.000300",
        });
        interaction("block_suggestion", team, user, self.api_app_id, rest)
    }
}

/// Each interaction's form body, from its `payload`.
macro_rules! interaction_forms {
    ($($kind:ident),*) => {$(
        impl $kind<'_> {
            /// The form body: one `payload` field with the interaction as JSON.
            pub fn form(&self) -> String {
                interaction_form(&self.payload())
            }
        }
    )*};
}

interaction_forms!(ButtonClick, ViewClick, ViewSubmission, BlockSuggestion);

/// The team domain of the payloads whose builders do not take one.
const DOMAIN: &str = "example";

/// An interaction payload of type `kind` from the `(team_id, team_domain)` and the
/// `(user_id, user_name)` to the app `api_app_id`: the parts every interaction
/// carries, then the fields of `rest` (a JSON object) that are the kind's own.
/// The builders above use it; so may one for a kind they do not cover.
pub(crate) fn interaction(
    kind: &str,
    (team_id, team_domain): (&str, &str),
    (user_id, user_name): (&str, &str),
    api_app_id: &str,
    rest: Value,
) -> Value {
    let mut payload = json!({
        "type": kind,
        "team": { "id": team_id, "domain": team_domain },
        "user": { "id": user_id, "username": user_name, "name": user_name, "team_id": team_id },
        "api_app_id": api_app_id,
    });
    if let (Some(payload), Value::Object(rest)) = (payload.as_object_mut(), rest) {
        payload.extend(rest);
    }
    payload
}

/// A clicked button as `block_actions` lists it in `actions`.
fn button(action_id: &str, block_id: &str, value: &str, action_ts: &str) -> Value {
    json!({
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "action_ts": action_ts,
    })
}

/// The form body of an interaction: one `payload` field with `payload` as JSON, as
/// Slack POSTs it to the interactivity URL.
pub fn interaction_form(payload: &Value) -> String {
    form(&[("payload", payload.to_string().as_str())])
}

/// `application/x-www-form-urlencoded`, spaces as `+`, as Slack encodes.
fn form(fields: &[(&str, &str)]) -> String {
    // Name-value pairs of strings always encode, whatever the strings hold:
    // serde_urlencoded fails only on shapes a form cannot carry (nested maps, bare
    // values), and this one is fixed by the type.
    serde_urlencoded::to_string(fields).expect("string pairs are always a form")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_encoded_as_slack_encodes_it() {
        let command = SlashCommand {
            token: "t",
            team_id: "T1",
            team_domain: "example",
            channel_id: "C1",
            channel_name: "general",
            user_id: "U1",
            user_name: "someone",
            command: "/jit",
            text: "request payments-db 30m INC-4411 a&b=c",
            response_url: "https://hooks.slack.com/commands/T1/1/x",
            trigger_id: "1.2.3",
        };
        assert_eq!(
            command.form(),
            "token=t&team_id=T1&team_domain=example&channel_id=C1&channel_name=general\
             &user_id=U1&user_name=someone&command=%2Fjit\
             &text=request+payments-db+30m+INC-4411+a%26b%3Dc\
             &response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fx\
             &trigger_id=1.2.3"
        );
    }

    #[test]
    fn a_click_carries_its_button_in_the_payload() {
        let click = ButtonClick {
            team_id: "T1",
            team_domain: "example",
            user_id: "U2",
            user_name: "lead",
            api_app_id: "A1",
            channel_id: "C2",
            channel_name: "approvals",
            message_ts: "1700000000.000101",
            trigger_id: "1.2.3",
            response_url: "http://127.0.0.1/respond",
            action_id: "approve",
            block_id: "decision:r-1",
            value: "r-1",
            action_ts: "1700000001.000200",
        };
        let form = click.form();
        let (name, payload) = form.split_once('=').expect("one field");
        assert_eq!(name, "payload");
        let spaced = payload.replace('+', " ");
        let decoded = urlencoding::decode(&spaced).expect("utf-8");
        let payload: serde_json::Value = serde_json::from_str(&decoded).expect("JSON");
        assert_eq!(payload["type"], "block_actions");
        assert_eq!(payload["user"]["id"], "U2");
        assert_eq!(payload["container"]["message_ts"], "1700000000.000101");
        assert_eq!(payload["channel"]["name"], "approvals");
        assert_eq!(payload["actions"][0]["action_id"], "approve");
        assert_eq!(payload["actions"][0]["block_id"], "decision:r-1");
        assert_eq!(payload["actions"][0]["value"], "r-1");
    }
}
