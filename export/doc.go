// Package export writes dsbatch's results as Parquet (zstd, dictionary-
// encoded strings) through Arrow and reads them back: the row tables
// (detections, tracks, events), whose rows a run stages per video (in
// memory, or in an Arrow IPC stage file once a video outgrows it) and
// writes as parts of many videos (PartWriter), and the videos table.
// Every file is written under a temporary name and renamed into place once
// complete, so readers never see a partial file.
package export
