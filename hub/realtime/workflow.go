package realtime

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"patientpass/rooms"
)

// The workflow's feeds (SPEC §9): "board:P", a pathway's triage queue;
// "wallboard", the caller's organisation's bed demand; "user", the
// caller's notifications; "system", the notice in force. Each sends a
// snapshot on subscribe, then the updates the service's Watcher is told of
// (Updates), on every node.

// BoardFeed is the "board:P" feed.
type BoardFeed struct{ Service *rooms.Service }

var _ SnapshotFeed = BoardFeed{}

// Kind is "board".
func (BoardFeed) Kind() string { return "board" }

// Keyed is true: the key is the pathway id.
func (BoardFeed) Keyed() bool { return true }

// Authorize lets the receiving team's coordinators and specialists watch
// the pathway's board.
func (f BoardFeed) Authorize(ctx context.Context, c rooms.Caller, pathway string, _ int64) error {
	return f.Service.AuthorizeBoard(ctx, c, pathway, "board.subscribe")
}

// Snapshot is the board as the caller sees it, with their unread counts.
func (f BoardFeed) Snapshot(ctx context.Context, c rooms.Caller, pathway string) (any, error) {
	return f.Service.Board(ctx, c, pathway)
}

// WallboardFeed is the "wallboard" feed: the caller's organisation's.
type WallboardFeed struct{ Service *rooms.Service }

var _ ScopedFeed = WallboardFeed{}
var _ SnapshotFeed = WallboardFeed{}

// Kind is "wallboard".
func (WallboardFeed) Kind() string { return "wallboard" }

// Keyed is false: the caller's organisation is the scope.
func (WallboardFeed) Keyed() bool { return false }

// Scope is the caller's organisation.
func (WallboardFeed) Scope(c rooms.Caller) string { return c.User.Organisation }

// Authorize lets the organisation's displays, bed managers, coordinators,
// specialists and admins watch it.
func (f WallboardFeed) Authorize(ctx context.Context, c rooms.Caller, _ string, _ int64) error {
	return f.Service.AuthorizeWallboard(ctx, c, "wallboard.subscribe")
}

// Snapshot is the organisation's wallboard now.
func (f WallboardFeed) Snapshot(ctx context.Context, c rooms.Caller, _ string) (any, error) {
	return f.Service.Wallboard(ctx, c)
}

// UserFeed is the "user" feed: the caller's own notifications.
type UserFeed struct{ Service *rooms.Service }

var _ ScopedFeed = UserFeed{}
var _ SnapshotFeed = UserFeed{}

// Kind is "user".
func (UserFeed) Kind() string { return "user" }

// Keyed is false: the caller is the scope.
func (UserFeed) Keyed() bool { return false }

// Scope is the caller's user id.
func (UserFeed) Scope(c rooms.Caller) string { return c.User.ID }

// Authorize lets every active user watch their own feed; a display has
// none.
func (f UserFeed) Authorize(ctx context.Context, c rooms.Caller, _ string, _ int64) error {
	if err := rooms.CheckUser(c); err != nil {
		_ = f.Service.AuditCaller(ctx, c, rooms.ActionRead, "user_feed.subscribe", nil, rooms.OutcomeDenied, string(rooms.CodeOf(err)))
		return err
	}
	return nil
}

// Snapshot is the unread count and the latest notifications.
func (f UserFeed) Snapshot(ctx context.Context, c rooms.Caller, _ string) (any, error) {
	return f.Service.UserFeed(ctx, c)
}

// SystemFeed is the "system" feed: the notice in force, for everyone.
type SystemFeed struct{ Service *rooms.Service }

var _ SnapshotFeed = SystemFeed{}

// Kind is "system".
func (SystemFeed) Kind() string { return "system" }

// Keyed is false: there is one system topic.
func (SystemFeed) Keyed() bool { return false }

// Authorize lets every active user and display watch it.
func (SystemFeed) Authorize(_ context.Context, c rooms.Caller, _ string, _ int64) error {
	return rooms.CheckViewer(c)
}

// NoticeData is the body of the system topic's frames: the notice in
// force, null when none is.
type NoticeData struct {
	Notice *rooms.SystemNotice `json:"notice"`
}

// Snapshot is the notice in force.
func (f SystemFeed) Snapshot(ctx context.Context, c rooms.Caller, _ string) (any, error) {
	n, err := f.Service.Notice(ctx, c)
	return NoticeData{Notice: n}, err
}

// Updates is the service's Watcher: it sends each change to its topic on
// every node.
type Updates struct {
	Hub *Hub
	Log zerolog.Logger
}

var _ rooms.Watcher = Updates{}

func (u Updates) update(topic string, data any) {
	if err := u.Hub.Update(topic, data); err != nil {
		u.Log.Error().Err(err).Str("topic", topic).Msg("live update not sent")
	}
}

// BoardChanged updates "board:P".
func (u Updates) BoardChanged(pathway string, b rooms.BoardUpdate) { u.update("board:"+pathway, b) }

// WallboardChanged updates the organisation's "wallboard".
func (u Updates) WallboardChanged(org string, w rooms.Wallboard) { u.update("wallboard:"+org, w) }

// Notified updates the user's "user" feed.
func (u Updates) Notified(userID string, n rooms.UserUpdate) { u.update("user:"+userID, n) }

// NoticeChanged updates "system".
func (u Updates) NoticeChanged(n *rooms.SystemNotice) { u.update("system", NoticeData{Notice: n}) }

// AddFeeds adds every feed of SPEC §6 and §9 over svc: the referral rooms,
// the boards, the wallboards, the users' feeds and the system notices.
func (h *Hub) AddFeeds(svc *rooms.Service) {
	h.AddFeed(ReferralFeed{Service: svc})
	h.AddFeed(BoardFeed{Service: svc})
	h.AddFeed(WallboardFeed{Service: svc})
	h.AddFeed(UserFeed{Service: svc})
	h.AddFeed(SystemFeed{Service: svc})
}

// RefreshViews sends the subscribers of boards and wallboards on this node
// a fresh snapshot every interval until ctx ends: their countdowns, flags
// and the day's counts change with the time alone, and a fresh snapshot
// also mends an update lost between nodes.
func (h *Hub) RefreshViews(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Refresh(BoardFeed{}.Kind())
			h.Refresh(WallboardFeed{}.Kind())
		}
	}
}
