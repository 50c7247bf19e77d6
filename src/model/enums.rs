//! The wire enums. Each has its documented values plus an `Other` variant that keeps an
//! unknown value verbatim, so receivers stay forward compatible while senders emit only
//! documented values (the builders never produce `Other`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a string enum with known lowercase values and a forward-compatible `Other`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version of the crate does not know, kept verbatim so that it
            /// re-serialises unchanged. Senders never produce it.
            Other(String),
        }

        impl $name {
            /// Every documented value, in the seed's order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            /// The wire value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $value, )+
                    $name::Other(other) => other.as_str(),
                }
            }

            /// Whether this is one of the documented values (not `Other`).
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }

            /// Maps a wire value; unknown values become `Other`.
            pub fn from_wire(value: &str) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from_wire(s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a string (", stringify!($name), ")"))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::from_wire(v))
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

wire_enum! {
    /// `call.status`: how a call ended.
    CallStatus {
        /// `finished`: call completed successfully.
        Finished => "finished",
        /// `missed`: recipient didn't answer or went to voicemail.
        Missed => "missed",
        /// `failed`: a technical error occurred.
        Failed => "failed",
    }
}

wire_enum! {
    /// `call.analysis.lead_warmth`: the AI's classification of the lead.
    LeadWarmth {
        /// `hot`: high interest, ready to move forward.
        Hot => "hot",
        /// `warm`: some interest, needs nurturing.
        Warm => "warm",
        /// `cold`: low interest or not qualified.
        Cold => "cold",
        /// `dead`: no interest or wrong number.
        Dead => "dead",
        /// `unknown`: unable to determine.
        Unknown => "unknown",
    }
}

wire_enum! {
    /// `call.analysis.sentiment`: the tone of the conversation.
    Sentiment {
        /// `positive`: friendly, receptive conversation.
        Positive => "positive",
        /// `neutral`: professional, factual interaction.
        Neutral => "neutral",
        /// `negative`: frustrated or hostile.
        Negative => "negative",
    }
}

wire_enum! {
    /// `call.transcript[].who`: who spoke a turn.
    Speaker {
        /// `user`: the person called (the caller in the seed's words).
        User => "user",
        /// `assistant`: the AI.
        Assistant => "assistant",
    }
}

wire_enum! {
    /// `webhook.type` in an event: which kind of webhook the event was sent to.
    WebhookKind {
        /// `outbound`: an outbound webhook, and the Test button's payload.
        Outbound => "outbound",
        /// `inbound`: a response webhook, which is configured on an inbound webhook and
        /// carries that inbound webhook's id.
        Inbound => "inbound",
    }
}

/// The HTTP method an outbound webhook uses. The seed offers POST and GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `POST`: the JSON event is the request body.
    #[default]
    Post,
    /// `GET`: no body; the JSON event travels in the `payload` query parameter.
    Get,
}

impl HttpMethod {
    /// `"POST"` or `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Get => "GET",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<HttpMethod> for http::Method {
    fn from(m: HttpMethod) -> Self {
        match m {
            HttpMethod::Post => http::Method::POST,
            HttpMethod::Get => http::Method::GET,
        }
    }
}
