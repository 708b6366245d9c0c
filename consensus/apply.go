package consensus

import (
	"fmt"
)

// apply validates cmd against s and, only if it is valid, mutates s. Every
// handler checks everything before changing anything, so a rejected command
// never leaves a half-applied state behind.
func (s *State) apply(index uint64, cmd Command) error {
	if err := checkBounds(cmd); err != nil {
		return err
	}
	if s.Ended() && cmd.Type != TypeRetryJob {
		return fmt.Errorf("%w: job is %s (%s); %s refused (a failed job is reopened only by a retry)", ErrTerminal, s.Status, s.Error, cmd.Type)
	}
	if fencedTypes[cmd.Type] && cmd.Epoch == 0 {
		return fmt.Errorf("%w: %s must carry the assignment epoch", ErrInvalid, cmd.Type)
	}
	if cmd.Epoch != 0 && cmd.Epoch < s.Assignment.Epoch {
		return fmt.Errorf("%w: %s issued under epoch %d, current epoch is %d",
			ErrStaleEpoch, cmd.Type, cmd.Epoch, s.Assignment.Epoch)
	}
	switch cmd.Type {
	case TypeSubmitJob:
		return with(cmd, s.submitJob)
	case TypeRegisterMember:
		return with(cmd, func(p RegisterMember) error { return s.registerMember(index, p) })
	case TypeRemoveMember:
		return with(cmd, s.removeMember)
	case TypeAssign:
		return with(cmd, func(p Assign) error { return s.assign(cmd.Epoch, p) })
	case TypeBeginStep:
		return with(cmd, s.beginStep)
	case TypeCommitGradNorm:
		return with(cmd, s.commitGradNorm)
	case TypeCommitTau:
		return with(cmd, s.commitTau)
	case TypeCommitLoss:
		return with(cmd, s.commitLoss)
	case TypeAckStep:
		return with(cmd, s.ackStep)
	case TypeRecordCheckpoint:
		return with(cmd, s.recordCheckpoint)
	case TypeRollback:
		return with(cmd, func(p Rollback) error { return s.rollback(cmd.Epoch, p) })
	case TypeSetStatus:
		return with(cmd, s.setStatus)
	case TypeSetResult:
		return with(cmd, s.setResult)
	case TypeRetryJob:
		return with(cmd, s.retryJob)
	}
	return fmt.Errorf("%w: %q", ErrUnknownType, cmd.Type)
}

// with decodes the payload of cmd as P and hands it to fn.
func with[P Payload](cmd Command, fn func(P) error) error {
	var p P
	if err := decodeStrict(cmd.Payload, &p); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrInvalid, cmd.Type, err)
	}
	return fn(p)
}

// invalid formats a validation error for command type typ.
func invalid(typ, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, typ, fmt.Sprintf(format, args...))
}
