//! A webhook's token rotation (`webhook.rotate`): the new token takes over at
//! once, and the token it replaced keeps answering until its grace ends.
//!
//! Only the token replaced last is kept: rotating again while a grace runs
//! ends that grace at once, so at most two tokens ever reach one webhook.

use serde::{Deserialize, Serialize};

use super::{Timestamp, Token, Webhook};

/// The token a rotation replaced, and when it stops answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousToken {
    pub token: Token,
    /// The first instant it no longer answers.
    pub expires_at: Timestamp,
}

/// One token change, as `webhook.rotate` asks it of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub new_token: Token,
    /// When the rotation happens (the webhook's new `updatedAt`).
    pub at: Timestamp,
    /// When the replaced token stops answering.
    pub previous_expires_at: Timestamp,
}

impl Webhook {
    /// This webhook under `rotation.new_token`; its current token becomes the
    /// previous one, and an earlier previous token is dropped.
    pub fn rotated(mut self, rotation: &Rotation) -> Webhook {
        self.previous_token = Some(PreviousToken {
            token: self.token,
            expires_at: rotation.previous_expires_at,
        });
        self.token = rotation.new_token;
        self.updated_at = rotation.at;
        self
    }

    /// Whether a call with `token` reaches this webhook at `now`: its own
    /// token always, the previous one while its grace runs.
    pub fn answers_to(&self, token: &Token, now: Timestamp) -> bool {
        self.token == *token
            || self
                .previous_token
                .is_some_and(|p| p.token == *token && now < p.expires_at)
    }

    /// When the previous token stops answering, while it still does.
    pub fn grace_running_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.previous_token
            .map(|p| p.expires_at)
            .filter(|ends| now < *ends)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::sample_webhook;

    #[test]
    fn the_previous_token_answers_until_its_grace_ends_and_only_the_last_one() {
        let webhook = sample_webhook();
        let first = webhook.token;
        let rotation = Rotation {
            new_token: Token::generate(),
            at: Timestamp(5_000),
            previous_expires_at: Timestamp(10_000),
        };
        let rotated = webhook.clone().rotated(&rotation);
        assert_eq!(rotated.token, rotation.new_token);
        assert_eq!(rotated.updated_at, Timestamp(5_000));
        assert_eq!(
            (rotated.created_at, &rotated.event_key),
            (webhook.created_at, &webhook.event_key)
        );
        assert!(rotated.answers_to(&rotation.new_token, Timestamp(99_999)));
        assert!(rotated.answers_to(&first, Timestamp(9_999)));
        assert!(!rotated.answers_to(&first, Timestamp(10_000)), "at the end");
        assert!(!rotated.answers_to(&Token::generate(), Timestamp(0)));
        assert_eq!(
            rotated.grace_running_until(Timestamp(9_999)),
            Some(Timestamp(10_000))
        );
        assert_eq!(rotated.grace_running_until(Timestamp(10_000)), None);

        let again = rotated.rotated(&Rotation {
            new_token: Token::generate(),
            at: Timestamp(6_000),
            previous_expires_at: Timestamp(20_000),
        });
        assert!(
            !again.answers_to(&first, Timestamp(6_000)),
            "replaced at once"
        );
        assert!(again.answers_to(&rotation.new_token, Timestamp(6_000)));
    }
}
