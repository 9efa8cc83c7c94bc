//! The page's HTML, one file per page plus the shared layout and the SVG pictures. maud escapes
//! every interpolated value; nothing here uses `PreEscaped` on data.

pub mod audit;
pub mod container;
pub mod layout;
pub mod node;
pub mod overview;
pub mod parts;
pub mod svg;
pub mod template;
