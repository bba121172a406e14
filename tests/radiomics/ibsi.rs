//! rtnode's radiomics in `ibsi` mode against the IBSI 1 digital phantom's
//! consensus values (fixtures/ibsi/ibsi1_digital_phantom_reference.csv):
//! every row rtnode computes, at every aggregation the reference gives
//! (texture families with directions: "3D, averaged", "3D, merged", "2.5D,
//! direction-merged", "2.5D, merged", "2D, averaged", "2D, slice-merged";
//! those without: "3D", "2.5D", "2D"), within the reference's tolerance.
//!
//! Ported from the lab crate's IBSI tests (radlab/tests/{firstorder,shape,
//! glcm,glrlm,glszm,gldm,ngtdm,gldzm}.rs): their IBSI-name → pyradiomics-name
//! mappings and their rule for the CSV's zero tolerances (`ibsi_tolerance`).
//! The per-class functions are called directly, and the 3D texture rows are
//! also reached through the product's parameter file and engine
//! (`engine_path_matches_ibsi_phantom`).
//!
//! Not computed by rtnode, so listed (and their number asserted) rather than
//! compared: the morphological convex-hull densities (morph.v.dens.conv.hull,
//! morph.a.dens.conv.hull), Moran's I (morph.moran.i) and Geary's C
//! (morph.geary.c); the local intensity features (loc.peak.local,
//! loc.peak.global); the intensity-volume histogram features (ivh.*).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::s;
use rtnode::radiomics::discretise::{discretise, Binning};
use rtnode::radiomics::image::{bounding_box, Aggregation, Levels, Roi, Standard, TextureSettings};
use rtnode::radiomics::{extract, io, Params, Task};
use rtnode::radiomics::{firstorder, glcm, gldm, gldzm, glrlm, glszm, ngtdm, shape};

type Feature = (&'static str, f64);

const STATISTICAL: &str = "Intensity-based statistical features";
const HISTOGRAM: &str = "Intensity histogram features";
const MORPHOLOGICAL: &str = "Morphological features";
const LOCAL_INTENSITY: &str = "Local intensity features";
const IVH: &str = "Intensity-volume histogram features";
const GLCM: &str = "Grey level co-occurrence based features";
const GLRLM: &str = "Grey level run length based features";
const GLSZM: &str = "Grey level size zone based features";
const GLDM: &str = "Neighbouring grey level dependence based features";
const NGTDM: &str = "Neighbourhood grey tone difference based features";
const GLDZM: &str = "Grey level distance zone based features";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ibsi")
}

// ---- the reference ----

use crate::radiomics_support;
use radiomics_support::read_csv;

/// One consensus row.
#[derive(Debug, Clone)]
struct Reference {
    family: String,
    /// IBSI's feature name, e.g. "Joint maximum".
    feature: String,
    /// IBSI's tag, e.g. "cm.joint.max".
    tag: String,
    /// "3D, merged", "2D", …; empty for families without aggregation.
    aggregation: String,
    /// The value as printed (its digits matter for a zero tolerance).
    text: String,
    value: f64,
    tolerance: f64,
}

fn reference() -> Vec<Reference> {
    let path = fixtures().join("ibsi1_digital_phantom_reference.csv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut records = read_csv(&text).into_iter();
    let header = records.next().unwrap();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .unwrap_or_else(|| panic!("no column {n} in {}", path.display()))
    };
    let (c_family, c_feature, c_tag, c_agg, c_value, c_tol) = (
        col("family"),
        col("feature"),
        col("ibsi_tag"),
        col("aggregation"),
        col("value"),
        col("tolerance"),
    );
    records
        .map(|f| {
            let line = f.join(",");
            assert!(f.len() > c_tol, "short row: {line}");
            Reference {
                family: f[c_family].clone(),
                feature: f[c_feature].clone(),
                tag: f[c_tag].clone(),
                aggregation: f[c_agg].trim().to_string(),
                text: f[c_value].clone(),
                value: f[c_value]
                    .parse()
                    .unwrap_or_else(|_| panic!("value of {line}")),
                tolerance: f[c_tol]
                    .parse()
                    .unwrap_or_else(|_| panic!("tolerance of {line}")),
            }
        })
        .collect()
}

/// The IBSI phantom values are given to three significant digits with a
/// tolerance of 0: a value passes when it rounds to the reference, i.e. lies
/// within half a unit of the reference's last digit (three significant
/// digits at least, so "1" and "550" are read as 1.00 and 550.). An exact 0
/// must be met to 1e-9.
fn ibsi_tolerance(text: &str, csv_tol: f64) -> f64 {
    let v: f64 = text.parse().unwrap_or(f64::NAN);
    if v == 0.0 {
        return csv_tol.max(1e-9);
    }
    let lower = text.to_ascii_lowercase();
    let mantissa = lower.split('e').next().unwrap_or("");
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let printed_sig = digits.trim_start_matches('0').len().max(1) as i32;
    let sig = printed_sig.max(3);
    let magnitude = v.abs().log10().floor() as i32;
    let half_unit = 0.5 * 10f64.powi(magnitude - (sig - 1));
    csv_tol.max(half_unit * (1.0 + 1e-9))
}

// ---- the phantom ----

/// The phantom as an uncropped ROI (first-order and morphological features)
/// and its grey levels on the mask's bounding box (texture features), as
/// the lab's tests prepared them.
fn phantom() -> (Roi, Levels) {
    let img = io::read(&fixtures().join("phantom.nii.gz")).unwrap();
    let msk = io::read(&fixtures().join("mask.nii.gz")).unwrap();
    assert_eq!(img.data.dim(), msk.data.dim());
    let roi = Roi {
        image: img.data.clone(),
        mask: msk.data.mapv(|v| v > 0.5),
        spacing: img.spacing,
    };
    let (lo, hi) = bounding_box(&roi.mask).expect("the phantom's mask is empty");
    let crop = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let cropped = Roi {
        image: roi.image.slice(crop).to_owned(),
        mask: roi.mask.slice(crop).to_owned(),
        spacing: roi.spacing,
    };
    let levels = discretise(&cropped, Binning::None, Standard::Ibsi, None);
    // IBSI: levels 1..=6, of which 2 and 5 are empty
    assert_eq!(levels.ng, 6);
    (roi, levels)
}

fn ibsi(force2d: bool, aggregation: Aggregation) -> TextureSettings {
    TextureSettings {
        standard: Standard::Ibsi,
        force2d,
        aggregation,
        ..Default::default()
    }
}

// ---- name mappings (from the lab's tests) ----

/// GLCM: IBSI's feature name → pyradiomics' name (IBSI's Dissimilarity is
/// Difference average, Sum variance is Cluster tendency, Joint variance is
/// Sum squares).
const GLCM_NAMES: [(&str, &str); 25] = [
    ("Joint maximum", "MaximumProbability"),
    ("Joint average", "JointAverage"),
    ("Joint variance", "SumSquares"),
    ("Joint entropy", "JointEntropy"),
    ("Difference average", "DifferenceAverage"),
    ("Difference variance", "DifferenceVariance"),
    ("Difference entropy", "DifferenceEntropy"),
    ("Sum average", "SumAverage"),
    ("Sum variance", "ClusterTendency"),
    ("Sum entropy", "SumEntropy"),
    ("Angular second moment", "JointEnergy"),
    ("Contrast", "Contrast"),
    ("Dissimilarity", "DifferenceAverage"),
    ("Inverse difference", "Id"),
    ("Normalised inverse difference", "Idn"),
    ("Inverse difference moment", "Idm"),
    ("Normalised inverse difference moment", "Idmn"),
    ("Inverse variance", "InverseVariance"),
    ("Correlation", "Correlation"),
    ("Autocorrelation", "Autocorrelation"),
    ("Cluster tendency", "ClusterTendency"),
    ("Cluster shade", "ClusterShade"),
    ("Cluster prominence", "ClusterProminence"),
    ("Information correlation 1", "Imc1"),
    ("Information correlation 2", "Imc2"),
];

/// GLRLM: IBSI's feature name → pyradiomics' name.
const GLRLM_NAMES: [(&str, &str); 16] = [
    ("Short runs emphasis", "ShortRunEmphasis"),
    ("Long runs emphasis", "LongRunEmphasis"),
    ("Low grey level run emphasis", "LowGrayLevelRunEmphasis"),
    ("High grey level run emphasis", "HighGrayLevelRunEmphasis"),
    (
        "Short run low grey level emphasis",
        "ShortRunLowGrayLevelEmphasis",
    ),
    (
        "Short run high grey level emphasis",
        "ShortRunHighGrayLevelEmphasis",
    ),
    (
        "Long run low grey level emphasis",
        "LongRunLowGrayLevelEmphasis",
    ),
    (
        "Long run high grey level emphasis",
        "LongRunHighGrayLevelEmphasis",
    ),
    ("Grey level non-uniformity", "GrayLevelNonUniformity"),
    (
        "Normalised grey level non-uniformity",
        "GrayLevelNonUniformityNormalized",
    ),
    ("Run length non-uniformity", "RunLengthNonUniformity"),
    (
        "Normalised run length non-uniformity",
        "RunLengthNonUniformityNormalized",
    ),
    ("Run percentage", "RunPercentage"),
    ("Grey level variance", "GrayLevelVariance"),
    ("Run length variance", "RunVariance"),
    ("Run entropy", "RunEntropy"),
];

/// GLSZM: IBSI tag (after `szm.`) → pyradiomics' name.
const GLSZM_NAMES: [(&str, &str); 16] = [
    ("sze", "SmallAreaEmphasis"),
    ("lze", "LargeAreaEmphasis"),
    ("lgze", "LowGrayLevelZoneEmphasis"),
    ("hgze", "HighGrayLevelZoneEmphasis"),
    ("szlge", "SmallAreaLowGrayLevelEmphasis"),
    ("szhge", "SmallAreaHighGrayLevelEmphasis"),
    ("lzlge", "LargeAreaLowGrayLevelEmphasis"),
    ("lzhge", "LargeAreaHighGrayLevelEmphasis"),
    ("glnu", "GrayLevelNonUniformity"),
    ("glnu.norm", "GrayLevelNonUniformityNormalized"),
    ("zsnu", "SizeZoneNonUniformity"),
    ("zsnu.norm", "SizeZoneNonUniformityNormalized"),
    ("z.perc", "ZonePercentage"),
    ("gl.var", "GrayLevelVariance"),
    ("zs.var", "ZoneVariance"),
    ("zs.entr", "ZoneEntropy"),
];

/// GLDM (IBSI's NGLDM with alpha 0 and Chebyshev distance 1 is pyradiomics'
/// GLDM): IBSI tag (after `ngl.`) → rtnode's name.
const GLDM_NAMES: [(&str, &str); 17] = [
    ("lde", "SmallDependenceEmphasis"),
    ("hde", "LargeDependenceEmphasis"),
    ("lgce", "LowGrayLevelEmphasis"),
    ("hgce", "HighGrayLevelEmphasis"),
    ("ldlge", "SmallDependenceLowGrayLevelEmphasis"),
    ("ldhge", "SmallDependenceHighGrayLevelEmphasis"),
    ("hdlge", "LargeDependenceLowGrayLevelEmphasis"),
    ("hdhge", "LargeDependenceHighGrayLevelEmphasis"),
    ("glnu", "GrayLevelNonUniformity"),
    ("glnu.norm", "GrayLevelNonUniformityNormalized"),
    ("dcnu", "DependenceNonUniformity"),
    ("dcnu.norm", "DependenceNonUniformityNormalized"),
    ("dc.perc", "DependencePercentage"),
    ("gl.var", "GrayLevelVariance"),
    ("dc.var", "DependenceVariance"),
    ("dc.entr", "DependenceEntropy"),
    ("dc.energy", "DependenceEnergy"),
];

/// NGTDM: IBSI tag (after `ngt.`) → pyradiomics' name.
const NGTDM_NAMES: [(&str, &str); 5] = [
    ("coarseness", "Coarseness"),
    ("contrast", "Contrast"),
    ("busyness", "Busyness"),
    ("complexity", "Complexity"),
    ("strength", "Strength"),
];

/// GLDZM (IBSI only): IBSI tag (after `dzm.`) → rtnode's name.
const GLDZM_NAMES: [(&str, &str); 16] = [
    ("sde", "SmallDistanceEmphasis"),
    ("lde", "LargeDistanceEmphasis"),
    ("lgze", "LowGrayLevelZoneEmphasis"),
    ("hgze", "HighGrayLevelZoneEmphasis"),
    ("sdlge", "SmallDistanceLowGrayLevelEmphasis"),
    ("sdhge", "SmallDistanceHighGrayLevelEmphasis"),
    ("ldlge", "LargeDistanceLowGrayLevelEmphasis"),
    ("ldhge", "LargeDistanceHighGrayLevelEmphasis"),
    ("glnu", "GrayLevelNonUniformity"),
    ("glnu.norm", "GrayLevelNonUniformityNormalized"),
    ("zdnu", "ZoneDistanceNonUniformity"),
    ("zdnu.norm", "ZoneDistanceNonUniformityNormalized"),
    ("z.perc", "ZonePercentage"),
    ("gl.var", "GrayLevelVariance"),
    ("zd.var", "ZoneDistanceVariance"),
    ("zd.entr", "ZoneDistanceEntropy"),
];

/// How a family's rows find rtnode's feature.
#[derive(Clone, Copy)]
enum Naming {
    /// rtnode's keys are the IBSI tags (firstorder/shape `features_ibsi`); a
    /// tag rtnode lacks is a feature it does not compute.
    Tag,
    /// IBSI feature name → rtnode's name (GLCM, GLRLM).
    Feature(&'static [(&'static str, &'static str)]),
    /// IBSI tag after the prefix → rtnode's name.
    TagSuffix(&'static str, &'static [(&'static str, &'static str)]),
}

impl Naming {
    /// rtnode's name for the row; None: not mapped.
    fn name(&self, r: &Reference) -> Option<String> {
        match self {
            Naming::Tag => Some(r.tag.clone()),
            Naming::Feature(names) => names
                .iter()
                .find(|(ibsi, _)| *ibsi == r.feature)
                .map(|(_, ours)| ours.to_string()),
            Naming::TagSuffix(prefix, names) => {
                let suffix = r.tag.strip_prefix(prefix)?;
                names
                    .iter()
                    .find(|(ibsi, _)| *ibsi == suffix)
                    .map(|(_, ours)| ours.to_string())
            }
        }
    }
}

// ---- comparison ----

/// One family's comparison: rows compared per aggregation, rows rtnode does
/// not compute, failures.
struct Tally {
    family: String,
    compared: BTreeMap<String, usize>,
    not_computed: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn new(family: &str) -> Tally {
        Tally {
            family: family.to_string(),
            compared: BTreeMap::new(),
            not_computed: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn check(&mut self, r: &Reference, name: &str, got: f64, source: &str) {
        let tol = ibsi_tolerance(&r.text, r.tolerance);
        *self.compared.entry(r.aggregation.clone()).or_default() += 1;
        let ok = (got - r.value).abs() <= tol;
        if !ok {
            self.failures.push(format!(
                "{} [{}] ({name}, {source}): ours {got} IBSI {} ± {tol:.3e} (CSV tolerance {})",
                r.tag, r.aggregation, r.text, r.tolerance
            ));
        }
    }

    /// Compares every row of the family against the feature sets by
    /// aggregation ("" for families without one).
    fn run(family: &str, naming: Naming, sets: &[(&str, Vec<Feature>)]) -> Tally {
        let mut t = Tally::new(family);
        for r in reference().iter().filter(|r| r.family == family) {
            let Some((_, ours)) = sets.iter().find(|(agg, _)| *agg == r.aggregation) else {
                t.failures.push(format!(
                    "{} [{}]: aggregation not computed",
                    r.tag, r.aggregation
                ));
                continue;
            };
            let Some(name) = naming.name(r) else {
                t.failures.push(format!(
                    "{} ({}): no rtnode feature mapped",
                    r.tag, r.feature
                ));
                continue;
            };
            match ours.iter().find(|(n, _)| *n == name) {
                Some(&(_, got)) => t.check(r, &name, got, "class function"),
                None if matches!(naming, Naming::Tag) => t.not_computed.push(r.tag.clone()),
                None => t.failures.push(format!(
                    "{} [{}]: {name} missing from rtnode's output",
                    r.tag, r.aggregation
                )),
            }
        }
        t
    }

    /// Prints the counts, the rows not computed and the failures; asserts no
    /// failure, the exact number of rows compared per aggregation (an empty
    /// or shrunken comparison fails) and the exact rows not computed.
    fn finish(self, expected: &[(&str, usize)], expected_not_computed: &[&str]) {
        let total: usize = self.compared.values().sum();
        println!("{}: {total} rows compared", self.family);
        for (agg, n) in &self.compared {
            let agg = if agg.is_empty() { "-" } else { agg };
            println!("  {agg:24} {n}");
        }
        println!(
            "  not computed: {} row(s) {:?}",
            self.not_computed.len(),
            self.not_computed
        );
        for f in &self.failures {
            println!("MISMATCH {}: {f}", self.family);
        }
        let want: BTreeMap<String, usize> =
            expected.iter().map(|(a, n)| (a.to_string(), *n)).collect();
        assert!(
            self.failures.is_empty(),
            "{}: {} IBSI mismatches",
            self.family,
            self.failures.len()
        );
        assert_eq!(self.compared, want, "{}: rows compared", self.family);
        assert_eq!(
            self.not_computed, expected_not_computed,
            "{}: rows not computed",
            self.family
        );
    }
}

const DIRECTIONAL: [&str; 6] = [
    "3D, averaged",
    "3D, merged",
    "2.5D, direction-merged",
    "2.5D, merged",
    "2D, averaged",
    "2D, slice-merged",
];

fn directional_counts(n: usize) -> Vec<(&'static str, usize)> {
    DIRECTIONAL.iter().map(|a| (*a, n)).collect()
}

fn slicewise_counts(n: usize) -> Vec<(&'static str, usize)> {
    ["3D", "2.5D", "2D"].iter().map(|a| (*a, n)).collect()
}

/// GLCM and GLRLM: the six IBSI aggregations.
fn directional_sets(
    levels: &Levels,
    features: fn(&Levels, &TextureSettings) -> Vec<Feature>,
    features_2d: fn(&Levels, &TextureSettings) -> Vec<Feature>,
) -> Vec<(&'static str, Vec<Feature>)> {
    vec![
        (
            "3D, averaged",
            features(levels, &ibsi(false, Aggregation::Averaged)),
        ),
        (
            "3D, merged",
            features(levels, &ibsi(false, Aggregation::Merged)),
        ),
        (
            "2.5D, direction-merged",
            features(levels, &ibsi(true, Aggregation::Averaged)),
        ),
        (
            "2.5D, merged",
            features(levels, &ibsi(true, Aggregation::Merged)),
        ),
        (
            "2D, averaged",
            features_2d(levels, &ibsi(true, Aggregation::Averaged)),
        ),
        (
            "2D, slice-merged",
            features_2d(levels, &ibsi(true, Aggregation::Merged)),
        ),
    ]
}

/// GLSZM, GLDM, NGTDM, GLDZM: "3D", "2.5D" (slice matrices merged) and "2D"
/// (features per slice, averaged).
fn slicewise_sets(
    levels: &Levels,
    features: fn(&Levels, &TextureSettings) -> Vec<Feature>,
    features_slicewise: fn(&Levels, &TextureSettings, bool) -> Vec<Feature>,
) -> Vec<(&'static str, Vec<Feature>)> {
    let s = ibsi(false, Aggregation::Averaged);
    vec![
        ("3D", features(levels, &s)),
        ("2.5D", features_slicewise(levels, &s, true)),
        ("2D", features_slicewise(levels, &s, false)),
    ]
}

// ---- the tests ----

/// Every family of the reference is one this file compares or lists as not
/// computed, so no row can drop out of the comparison unnoticed.
#[test]
fn every_reference_row_is_accounted_for() {
    let rows = reference();
    let mut by_family: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *by_family.entry(r.family.as_str()).or_default() += 1;
    }
    println!("{} reference rows", rows.len());
    for (f, n) in &by_family {
        println!("  {f:52} {n}");
    }
    let want: BTreeMap<&str, usize> = [
        (MORPHOLOGICAL, 25),
        (LOCAL_INTENSITY, 2),
        (STATISTICAL, 18),
        (HISTOGRAM, 23),
        (IVH, 6),
        (GLCM, 150),
        (GLRLM, 96),
        (GLSZM, 48),
        (GLDZM, 48),
        (NGTDM, 15),
        (GLDM, 51),
    ]
    .into_iter()
    .collect();
    assert_eq!(by_family, want);
    assert_eq!(rows.len(), 482);
}

/// Local intensity (peaks) and the intensity-volume histogram are IBSI
/// families rtnode does not compute: listed here, not compared.
#[test]
fn families_not_computed() {
    let rows = reference();
    for family in [LOCAL_INTENSITY, IVH] {
        let tags: Vec<&str> = rows
            .iter()
            .filter(|r| r.family == family)
            .map(|r| r.tag.as_str())
            .collect();
        println!("{family}: not computed, {} rows {tags:?}", tags.len());
    }
    let not: Vec<&str> = rows
        .iter()
        .filter(|r| r.family == LOCAL_INTENSITY || r.family == IVH)
        .map(|r| r.tag.as_str())
        .collect();
    assert_eq!(
        not,
        [
            "loc.peak.local",
            "loc.peak.global",
            "ivh.V10",
            "ivh.V90",
            "ivh.I10",
            "ivh.I90",
            "ivh.V10minusV90",
            "ivh.I10minusI90",
        ]
    );
}

#[test]
fn statistical_and_histogram_features() {
    let (roi, _) = phantom();
    let levels = discretise(&roi, Binning::None, Standard::Ibsi, None);
    assert_eq!(levels.ng, 6);
    let ours = firstorder::features_ibsi(&roi, &levels);
    let sets = [("", ours)];
    let stat = Tally::run(STATISTICAL, Naming::Tag, &sets);
    let hist = Tally::run(HISTOGRAM, Naming::Tag, &sets);
    stat.finish(&[("", 18)], &[]);
    hist.finish(&[("", 23)], &[]);
}

#[test]
fn morphological_features() {
    let (roi, _) = phantom();
    let sets = [("", shape::features_ibsi(&roi))];
    Tally::run(MORPHOLOGICAL, Naming::Tag, &sets).finish(
        &[("", 21)],
        // not computed: convex hull, Moran's I, Geary's C
        &[
            "morph.v.dens.conv.hull",
            "morph.a.dens.conv.hull",
            "morph.moran.i",
            "morph.geary.c",
        ],
    );
}

#[test]
fn glcm_features() {
    let (_, levels) = phantom();
    let sets = directional_sets(&levels, glcm::features, glcm::features_2d);
    Tally::run(GLCM, Naming::Feature(&GLCM_NAMES), &sets).finish(&directional_counts(25), &[]);
}

#[test]
fn glrlm_features() {
    let (_, levels) = phantom();
    let sets = directional_sets(&levels, glrlm::features, glrlm::features_2d);
    Tally::run(GLRLM, Naming::Feature(&GLRLM_NAMES), &sets).finish(&directional_counts(16), &[]);
}

#[test]
fn glszm_features() {
    let (_, levels) = phantom();
    let sets = slicewise_sets(&levels, glszm::features, glszm::features_slicewise);
    Tally::run(GLSZM, Naming::TagSuffix("szm.", &GLSZM_NAMES), &sets)
        .finish(&slicewise_counts(16), &[]);
}

#[test]
fn gldm_features() {
    let (_, levels) = phantom();
    let sets = slicewise_sets(&levels, gldm::features, gldm::features_slicewise);
    Tally::run(GLDM, Naming::TagSuffix("ngl.", &GLDM_NAMES), &sets)
        .finish(&slicewise_counts(17), &[]);
}

#[test]
fn ngtdm_features() {
    let (_, levels) = phantom();
    let sets = slicewise_sets(&levels, ngtdm::features, ngtdm::features_slicewise);
    Tally::run(NGTDM, Naming::TagSuffix("ngt.", &NGTDM_NAMES), &sets)
        .finish(&slicewise_counts(5), &[]);
}

#[test]
fn gldzm_features() {
    let (_, levels) = phantom();
    let sets = slicewise_sets(&levels, gldzm::features, gldzm::features_slicewise);
    Tally::run(GLDZM, Naming::TagSuffix("dzm.", &GLDZM_NAMES), &sets)
        .finish(&slicewise_counts(16), &[]);
}

/// The 3D texture rows through the product's parameter file and engine
/// (`extract`): `binWidth: 1` with bins starting at the lower
/// resegmentation bound 1 (IBSI mode) reproduces the phantom's grey levels
/// 1..6, and the engine's values equal the class functions' and IBSI's.
/// The YAML is run with `aggregation: merged` (GLCM/GLRLM "3D, merged";
/// GLSZM/GLDM/NGTDM "3D") and with `aggregation: averaged` (GLCM/GLRLM
/// "3D, averaged"). The engine has no GLDZM (not a pyradiomics class).
#[test]
fn engine_path_matches_ibsi_phantom() {
    let img = io::read(&fixtures().join("phantom.nii.gz")).unwrap();
    let msk = io::read(&fixtures().join("mask.nii.gz")).unwrap();
    let mask = msk.data.mapv(|v| v > 0.5);

    // the engine's discretisation of these settings is the phantom's levels
    let (_, levels) = phantom();
    let (lo, hi) = bounding_box(&mask).unwrap();
    let crop = s![lo[0]..hi[0], lo[1]..hi[1], lo[2]..hi[2]];
    let cropped = Roi {
        image: img.data.slice(crop).to_owned(),
        mask: mask.slice(crop).to_owned(),
        spacing: img.spacing,
    };
    let binned = discretise(&cropped, Binning::Width(1.0), Standard::Ibsi, Some(1.0));
    assert_eq!(binned.ng, 6, "binWidth 1 from 1: levels 1..6");
    assert_eq!(
        binned.grid, levels.grid,
        "binWidth 1 from the lower bound 1 gives the phantom's own grey levels"
    );

    let mut tally = Tally::new("engine (extract, parameter file)");
    let mut consistency = Vec::new();
    let reference = reference();
    for aggregation in ["merged", "averaged"] {
        let yaml = format!(
            "setting: {{standard: ibsi, binWidth: 1, resegmentRange: [1], aggregation: {aggregation}, minimumROIDimensions: 1}}"
        );
        let params = Params::from_yaml(&yaml).unwrap();
        let task = Task::whole(
            "phantom",
            img.data.mapv(|v| v as f32),
            mask.clone(),
            img.spacing,
            &yaml,
        );
        let out = extract(&task, &params).unwrap();
        let diag = |k: &str| {
            out.diagnostics
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {k}"))
        };
        // resegmentation at 1 keeps every ROI voxel of the phantom
        assert_eq!(
            diag("diagnostics_Mask-resegmented_VoxelNum"),
            diag("diagnostics_Mask-original_VoxelNum")
        );
        assert_eq!(diag("diagnostics_Configuration_Standard"), "ibsi");
        let engine = |class: &str, name: &str| {
            let key = format!("original_{class}_{name}");
            out.features
                .iter()
                .find(|(n, _)| *n == key)
                .map(|(_, v)| *v)
        };

        // the engine's values are the class functions' on the same levels
        let agg = if aggregation == "merged" {
            Aggregation::Merged
        } else {
            Aggregation::Averaged
        };
        let direct: [(&str, Vec<Feature>); 5] = [
            ("glcm", glcm::features(&levels, &ibsi(false, agg))),
            ("glrlm", glrlm::features(&levels, &ibsi(false, agg))),
            ("glszm", glszm::features(&levels, &ibsi(false, agg))),
            ("gldm", gldm::features(&levels, &ibsi(false, agg))),
            ("ngtdm", ngtdm::features(&levels, &ibsi(false, agg))),
        ];
        for (class, feats) in &direct {
            for (name, want) in feats {
                match engine(class, name) {
                    None => consistency.push(format!("{aggregation}: {class} {name} missing")),
                    Some(got) => {
                        let same = (got.is_nan() && want.is_nan())
                            || (got - want).abs() <= 1e-12 * want.abs().max(1.0);
                        if !same {
                            consistency.push(format!(
                                "{aggregation}: {class} {name}: engine {got} class function {want}"
                            ));
                        }
                    }
                }
            }
        }

        // and IBSI's 3D rows
        let families: Vec<(&str, &str, Naming, &str)> = if aggregation == "merged" {
            vec![
                (GLCM, "glcm", Naming::Feature(&GLCM_NAMES), "3D, merged"),
                (GLRLM, "glrlm", Naming::Feature(&GLRLM_NAMES), "3D, merged"),
                (
                    GLSZM,
                    "glszm",
                    Naming::TagSuffix("szm.", &GLSZM_NAMES),
                    "3D",
                ),
                (GLDM, "gldm", Naming::TagSuffix("ngl.", &GLDM_NAMES), "3D"),
                (
                    NGTDM,
                    "ngtdm",
                    Naming::TagSuffix("ngt.", &NGTDM_NAMES),
                    "3D",
                ),
            ]
        } else {
            vec![
                (GLCM, "glcm", Naming::Feature(&GLCM_NAMES), "3D, averaged"),
                (
                    GLRLM,
                    "glrlm",
                    Naming::Feature(&GLRLM_NAMES),
                    "3D, averaged",
                ),
            ]
        };
        for (family, class, naming, row_agg) in families {
            for r in reference
                .iter()
                .filter(|r| r.family == family && r.aggregation == row_agg)
            {
                let Some(name) = naming.name(r) else {
                    tally
                        .failures
                        .push(format!("{}: no rtnode feature mapped", r.tag));
                    continue;
                };
                match engine(class, &name) {
                    Some(got) => tally.check(r, &name, got, &format!("engine, {aggregation}")),
                    None => tally.failures.push(format!(
                        "{} [{}]: original_{class}_{name} missing from the engine's output",
                        r.tag, r.aggregation
                    )),
                }
            }
        }
    }
    for c in &consistency {
        println!("ENGINE ≠ CLASS FUNCTION {c}");
    }
    // per aggregation, the rows of all five classes: "3D, merged" and
    // "3D, averaged" are GLCM (25) + GLRLM (16); "3D" is GLSZM (16) +
    // GLDM (17) + NGTDM (5)
    let counts = [("3D", 38), ("3D, averaged", 41), ("3D, merged", 41)];
    let failed_consistency = consistency.len();
    tally.finish(&counts, &[]);
    assert_eq!(
        failed_consistency, 0,
        "engine values differ from the class functions'"
    );
}
