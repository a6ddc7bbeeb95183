// Package export writes dsbatch's results as Parquet (zstd, dictionary-
// encoded strings) through Arrow: detections, one file per video, and the
// videos table. Every file is written under a temporary name and renamed
// into place once complete, so readers never see a partial file.
package export
