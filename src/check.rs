//! `check [DOMAIN...]`: one DNS round, printed for a person or as JSON.
