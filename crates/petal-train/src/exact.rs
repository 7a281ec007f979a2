//! Floats in checkpoint JSON as text (`"0.1"`, `"NaN"`, `"inf"`): JSON numbers cannot
//! hold NaN or infinities, and Rust's shortest float text reads back to the same bits.
//! Use with `#[serde(with = "crate::exact")]` or `#[serde(with = "crate::exact::option")]`.

use serde::{de::Error, Deserialize, Deserializer, Serializer};

/// Writes `value` as its shortest exact text.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{value:?}"))
}

/// Reads a float written by [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|_| D::Error::custom(format!("{text:?} is not a number")))
}

/// The same for `Option<f64>` (`null` for `None`).
pub mod option {
    use super::*;

    /// Writes `Some(value)` as text, `None` as null.
    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                text.parse()
                    .map_err(|_| D::Error::custom(format!("{text:?} is not a number")))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    struct Pair {
        #[serde(with = "crate::exact")]
        a: f64,
        #[serde(with = "crate::exact::option")]
        b: Option<f64>,
    }

    #[test]
    fn every_float_reads_back_to_the_same_bits() {
        for a in [
            0.1,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-310,
            f64::MAX,
        ] {
            let text = serde_json::to_string(&Pair { a, b: Some(a) }).unwrap();
            let back: Pair = serde_json::from_str(&text).unwrap();
            assert_eq!(back.a.to_bits(), a.to_bits(), "{text}");
            assert_eq!(back.b.map(f64::to_bits), Some(a.to_bits()));
        }
        let none: Pair = serde_json::from_str(r#"{"a": "2.5", "b": null}"#).unwrap();
        assert_eq!((none.a, none.b), (2.5, None));
        assert!(serde_json::from_str::<Pair>(r#"{"a": "two", "b": null}"#).is_err());
    }
}
