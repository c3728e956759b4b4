//! Lung-RADS v2022, baseline screening: the category each finding implies, the rule that
//! applied, and the scan's category (the highest).
//!
//! Decided by the mean diameter rounded to 0.1 mm ([`Measurement::diameter_mm`]); the
//! volume thresholds of the same rules (113, 268, 1,767, 14,137 mm³) are quoted in the rules'
//! text. The juxtapleural rule (category 2 for a solid nodule < 10 mm on the pleura with a
//! smooth margin) needs a reader: the pipeline tells a nodule on the pleura
//! ([`crate::juxtapleural`]) but not reliably a smooth margin, so such a nodule keeps its size
//! category and its rule says a reader may apply the juxtapleural rule. Perifissural nodules
//! are not told; category 4X (extra suspicious features) and the S modifier need a reader.

use serde::{Deserialize, Serialize};

use crate::measure::{JUXTAPLEURAL_MAX_MM, Measurement, NoduleType};

/// A Lung-RADS category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Category {
    /// Incomplete: part of the lungs cannot be evaluated.
    #[serde(rename = "0")]
    Incomplete,
    /// Negative: no nodules, or nodules with benign calcification.
    #[serde(rename = "1")]
    Negative,
    /// Benign appearance or behaviour.
    #[serde(rename = "2")]
    Benign,
    /// Probably benign.
    #[serde(rename = "3")]
    ProbablyBenign,
    /// Suspicious.
    #[serde(rename = "4A")]
    Suspicious,
    /// Very suspicious.
    #[serde(rename = "4B")]
    VerySuspicious,
}

impl Category {
    /// The category as reports write it: "0", "1", "2", "3", "4A", "4B".
    pub fn code(self) -> &'static str {
        match self {
            Category::Incomplete => "0",
            Category::Negative => "1",
            Category::Benign => "2",
            Category::ProbablyBenign => "3",
            Category::Suspicious => "4A",
            Category::VerySuspicious => "4B",
        }
    }

    /// What the category means for follow-up (Lung-RADS v2022 management).
    pub fn management(self) -> &'static str {
        match self {
            Category::Incomplete => {
                "additional imaging needed (comparison with prior CT, or a CT covering the lungs)"
            }
            Category::Negative | Category::Benign => {
                "continue annual screening with LDCT in 12 months"
            }
            Category::ProbablyBenign => "LDCT in 6 months",
            Category::Suspicious => {
                "LDCT in 3 months; PET/CT may be considered if there is a ≥ 8 mm solid component"
            }
            Category::VerySuspicious => {
                "diagnostic chest CT with or without contrast; PET/CT and/or tissue sampling depending on the probability of malignancy"
            }
        }
    }
}

/// A category and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub category: Category,
    pub rule: String,
}

impl Assessment {
    fn new(category: Category, rule: impl Into<String>) -> Assessment {
        Assessment {
            category,
            rule: rule.into(),
        }
    }
}

/// The category of one finding at baseline.
pub fn categorise(m: &Measurement) -> Assessment {
    use Category::*;
    let d = m.diameter_mm;
    if m.calcified {
        return Assessment::new(Negative, "benign (calcified) nodule");
    }
    let by_size = by_size(m);
    if m.on_pleura
        && m.nodule_type == NoduleType::Solid
        && d < JUXTAPLEURAL_MAX_MM
        && by_size.category > Benign
    {
        return Assessment::new(
            by_size.category,
            format!("{}; on the pleura: {JUXTAPLEURAL_NOTE}", by_size.rule),
        );
    }
    by_size
}

/// What the rule of a solid nodule under 10 mm on the pleura adds.
pub const JUXTAPLEURAL_NOTE: &str =
    "category 2 if a reader finds its margin smooth (juxtapleural rule)";

/// The category by attenuation and size.
fn by_size(m: &Measurement) -> Assessment {
    use Category::*;
    let d = m.diameter_mm;
    match m.nodule_type {
        NoduleType::Solid => {
            if d < 6.0 {
                Assessment::new(Benign, "solid < 6 mm (< 113 mm³)")
            } else if d < 8.0 {
                Assessment::new(ProbablyBenign, "solid ≥ 6 to < 8 mm (113 to < 268 mm³)")
            } else if d < 15.0 {
                Assessment::new(Suspicious, "solid ≥ 8 to < 15 mm (268 to < 1,767 mm³)")
            } else {
                Assessment::new(VerySuspicious, "solid ≥ 15 mm (≥ 1,767 mm³)")
            }
        }
        NoduleType::PartSolid => {
            let solid = m.solid_component_mm.unwrap_or(0.0);
            if d < 6.0 {
                Assessment::new(Benign, "part-solid < 6 mm total diameter (< 113 mm³)")
            } else if solid < 6.0 {
                Assessment::new(
                    ProbablyBenign,
                    "part-solid ≥ 6 mm total diameter with solid component < 6 mm (< 113 mm³)",
                )
            } else if solid < 8.0 {
                Assessment::new(
                    Suspicious,
                    "part-solid with solid component ≥ 6 to < 8 mm (113 to < 268 mm³)",
                )
            } else {
                Assessment::new(
                    VerySuspicious,
                    "part-solid with solid component ≥ 8 mm (≥ 268 mm³)",
                )
            }
        }
        NoduleType::GroundGlass => {
            if d < 30.0 {
                Assessment::new(Benign, "ground glass < 30 mm (< 14,137 mm³)")
            } else {
                Assessment::new(ProbablyBenign, "ground glass ≥ 30 mm (≥ 14,137 mm³)")
            }
        }
    }
}

/// The scan's category: 0 when the lungs are not (all) in the scan, else the highest of its
/// findings', 1 when there are none.
pub fn scan_category<'a>(
    findings: impl IntoIterator<Item = &'a Assessment>,
    lungs_covered: bool,
) -> Assessment {
    if !lungs_covered {
        return Assessment::new(
            Category::Incomplete,
            "part of the lungs is not in the scan (or no lungs were found)",
        );
    }
    findings
        .into_iter()
        .max_by_key(|a| a.category)
        .map(|a| Assessment::new(a.category, format!("highest finding: {}", a.rule)))
        .unwrap_or_else(|| Assessment::new(Category::Negative, "no nodules found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(nodule_type: NoduleType, d: f64, solid: Option<f64>) -> Measurement {
        Measurement {
            center_mm: [0.0; 3],
            long_axis_mm: d,
            short_axis_mm: d,
            diameter_mm: d,
            volume_mm3: 0.0,
            mean_hu: 0.0,
            nodule_type,
            solid_share: 0.5,
            solid_component_mm: solid,
            calcified: false,
            on_pleura: false,
            slices: [0, 0],
            descriptors: Default::default(),
        }
    }

    fn category(t: NoduleType, d: f64, solid: Option<f64>) -> &'static str {
        categorise(&finding(t, d, solid)).category.code()
    }

    #[test]
    fn solid_nodules_at_every_boundary() {
        use NoduleType::Solid;
        assert_eq!(category(Solid, 3.0, None), "2");
        assert_eq!(category(Solid, 5.9, None), "2");
        assert_eq!(category(Solid, 6.0, None), "3");
        assert_eq!(category(Solid, 7.9, None), "3");
        assert_eq!(category(Solid, 8.0, None), "4A");
        assert_eq!(category(Solid, 14.9, None), "4A");
        assert_eq!(category(Solid, 15.0, None), "4B");
        assert_eq!(category(Solid, 45.0, None), "4B");
    }

    #[test]
    fn part_solid_nodules_at_every_boundary() {
        use NoduleType::PartSolid;
        assert_eq!(category(PartSolid, 5.9, Some(5.0)), "2");
        assert_eq!(category(PartSolid, 6.0, Some(3.0)), "3");
        assert_eq!(category(PartSolid, 12.0, Some(5.9)), "3");
        assert_eq!(category(PartSolid, 12.0, Some(6.0)), "4A");
        assert_eq!(category(PartSolid, 12.0, Some(7.9)), "4A");
        assert_eq!(category(PartSolid, 12.0, Some(8.0)), "4B");
    }

    #[test]
    fn solid_nodules_under_10_mm_on_the_pleura_keep_their_size_category_with_a_note() {
        let on_pleura = |t: NoduleType, d: f64| {
            let mut m = finding(t, d, None);
            m.on_pleura = true;
            categorise(&m)
        };
        let note = |a: &Assessment| a.rule.contains(JUXTAPLEURAL_NOTE);
        for (d, code) in [(6.0, "3"), (8.0, "4A"), (9.9, "4A")] {
            let a = on_pleura(NoduleType::Solid, d);
            assert_eq!(a.category.code(), code, "{d} mm");
            assert!(note(&a), "{d} mm: {}", a.rule);
        }
        // Category 2 already, 10 mm and above, or not solid: no note.
        assert!(!note(&on_pleura(NoduleType::Solid, 5.9)));
        assert!(!note(&on_pleura(NoduleType::Solid, 10.0)));
        assert!(!note(&on_pleura(NoduleType::PartSolid, 9.0)));
        assert!(
            !categorise(&finding(NoduleType::Solid, 9.9, None))
                .rule
                .contains(JUXTAPLEURAL_NOTE)
        );
    }

    #[test]
    fn ground_glass_calcified_and_the_scan() {
        use NoduleType::*;
        assert_eq!(category(GroundGlass, 29.9, None), "2");
        assert_eq!(category(GroundGlass, 30.0, None), "3");
        let mut calcified = finding(Solid, 20.0, None);
        calcified.calcified = true;
        assert_eq!(categorise(&calcified).category, Category::Negative);

        let found = [
            categorise(&finding(Solid, 7.0, None)),
            categorise(&finding(Solid, 9.0, None)),
            categorise(&finding(GroundGlass, 12.0, None)),
        ];
        let scan = scan_category(&found, true);
        assert_eq!(scan.category, Category::Suspicious);
        assert!(scan.rule.contains("≥ 8 to < 15"));
        assert_eq!(scan_category(&[], true).category, Category::Negative);
        assert_eq!(scan_category(&found, false).category, Category::Incomplete);
        assert_eq!(
            serde_json::to_string(&Category::Suspicious).unwrap(),
            "\"4A\""
        );
    }
}
