// Package track follows objects through a video: ByteTrack's two-stage
// association of detections to Kalman-predicted tracks by IoU, solved as an
// optimal assignment, one Tracker per video.
package track
