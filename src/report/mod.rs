//! The report engine: from a course's inputs ([`content::ReportInputs`]:
//! the CT volume, structure sets, DVH, QC, radiomics and manifest, each
//! optional but the CT) to a self-contained HTML page, a PDF/A-2b with the
//! same content, and that PDF as an Encapsulated PDF object in the course's
//! study. It shows DVH curves, axial CT slices with plan and auto contours,
//! the DVH metric and constraint tables, a radiomics summary, the QC
//! findings and stage timings — whatever of these the course has, naming
//! what it lacks. Pure: it knows no stage, queue or course folder; the
//! report stage ([`crate::stages::report`]) reads the inputs and writes the
//! files.
//!
//! Page 1 is what a physicist checks first (patient, plans and
//! prescription, the dose used and why, target coverage, constraints, the
//! QC verdict, automatic contours, the DVH method, review lines); then the
//! DVH plot and CT slices; then the full tables as an appendix.
//!
//! [`content`] decides what is shown ([`summary`] page 1, [`appendix`] the
//! tables; [`figures`] draws the plots and slices), [`model`] holds it,
//! [`html`] and [`pdf`] (PDF/A-2b through krilla, fonts embedded) render
//! it, [`png`] encodes the HTML's CT slices, [`dicom`] wraps the PDF;
//! [`csv`] reads the stages' CSV files as the report prints them.

pub mod appendix;
pub mod content;
pub mod csv;
pub mod dicom;
pub mod figures;
pub mod html;
pub mod model;
pub mod pdf;
pub mod png;
pub mod settings;
pub mod summary;
