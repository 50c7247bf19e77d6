//! Zero-sized markers for the constant `type` of each message: they serialise to their
//! value and refuse any other value when parsed.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! tag {
    ($(#[$meta:meta])* $name:ident => $value:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub(crate) struct $name;

        impl $name {
            pub(crate) const VALUE: &'static str = $value;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("the string \"", $value, "\""))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        if v == $value {
                            Ok($name)
                        } else {
                            Err(E::custom(format!(
                                concat!("type must be \"", $value, "\", got {:?}"),
                                v
                            )))
                        }
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

tag!(
    /// `"calls.execute"`.
    ExecuteTag => "calls.execute"
);
tag!(
    /// `"call.finished"`.
    FinishedTag => "call.finished"
);
tag!(
    /// `"call.completed"`.
    CompletedTag => "call.completed"
);
