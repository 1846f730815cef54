// Package rooms is the domain of Patient Pass: organisations, users and roles,
// pathways, referrals and their status machine, priorities and triage
// deadlines, room events, the sectioned management plan, access rules, the
// audit chain, and the Service that executes every command.
//
// It uses the standard library only and declares the interfaces it needs
// (Store, Publisher, Clock); persistence and hub implement and call them.
package rooms
