// The lending server's files: the state file (restored line by line,
// saved when it changed), the status file, and the status answer cut to
// one credential.
#include "core/service/lending_server.hpp"

#include "core/io/file_io.hpp"
#include "core/util/log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace flexslurm
{

namespace
{

// The state file's lines (core/io/file_io.hpp's FileLines: each at most
// `max_line` bytes, all at most `max_total`), with the log's error texts.
class LineReader
{
public:
	LineReader(const std::string &path, size_t max_line, size_t max_total)
	    : lines_(path, {max_total, false, false}, max_line)
	{
	}

	bool missing() const noexcept { return lines_.status().error == ReadError::missing; }
	std::string error() const
	{
		const FileRead &s = lines_.status();
		return s.error == ReadError::too_large
		               ? "larger than " + std::to_string(s.limit >> 20) + " MiB"
		               : s.why();
	}

	// false at the end, or on an error (see error()).
	bool next(std::string_view &line) { return lines_.next(line); }

private:
	FileLines lines_;
};

size_t line_count(std::string_view text)
{
	return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The first lines of `part` (its header line always) that fit in `room`.
std::string_view first_lines(std::string_view part, size_t room)
{
	if (part.size() <= room)
		return part;
	const size_t header = part.find('\n') + 1;
	const size_t cut = room ? part.rfind('\n', room - 1) : std::string_view::npos;
	return part.substr(0, std::max(header, cut == std::string_view::npos ? 0 : cut + 1));
}

// A status cut to one credential: every reclaim in flight that fits, the
// first slices, the newest history, each cut at a line, and a last line
// that says so.
} // namespace

std::string fit_status_answer(const std::string &text, const std::string &path)
{
	const size_t r = text.find("RECLAIMS IN FLIGHT\n");
	const size_t h = text.find("HISTORY\n", r == std::string::npos ? 0 : r);
	if (r == std::string::npos || h == std::string::npos)
		return text.substr(0, LendingServer::max_status_answer_bytes);
	const std::string_view all(text);
	const std::string_view slices = all.substr(0, r), reclaims = all.substr(r, h - r),
	                       history = all.substr(h);
	size_t room = LendingServer::max_status_answer_bytes - 512; // the last line
	const std::string_view kept_reclaims = first_lines(reclaims, room);
	room -= std::min(room, kept_reclaims.size());
	// The newest events keep up to 8 KiB; slices get the rest first.
	const size_t for_history = std::min({history.size(), room, size_t{8192}});
	const std::string_view kept_slices = first_lines(slices, room - for_history);
	room -= std::min(room, kept_slices.size());
	std::string kept_history(history.substr(0, history.find('\n') + 1));
	if (history.size() <= room)
		kept_history = history;
	else if (room > kept_history.size()) { // the newest events that fit
		const std::string_view events = history.substr(kept_history.size());
		const size_t from = events.find('\n', events.size() - (room - kept_history.size()));
		if (from != std::string_view::npos)
			kept_history += events.substr(from + 1);
	}
	std::string out;
	out.append(kept_slices).append(kept_reclaims).append(kept_history);
	out += "truncated: " + std::to_string(line_count(out)) + " of " + std::to_string(line_count(text)) +
	       " lines shown (an answer is at most " +
	       std::to_string(LendingServer::max_status_answer_bytes) + " bytes); the whole status is in " +
	       path + "\n";
	return out;
}

std::string totals_comment(std::string_view existing, const JobTotals &t)
{
	std::string ours = "flexslurm:";
	if (t.lent_slice_seconds)
		ours += " lent " + std::to_string(t.lent_slice_seconds) + " slice-s";
	if (t.borrowed_slice_seconds)
		ours += std::string(t.lent_slice_seconds ? "," : "") + " borrowed " +
		        std::to_string(t.borrowed_slice_seconds) + " slice-s";
	std::string text(existing);
	if (const size_t from = text.find("flexslurm:"); from != std::string::npos) {
		const size_t to = text.find(';', from);
		text.erase(from, to == std::string::npos ? std::string::npos : to - from + 1);
	}
	while (!text.empty() && (text.back() == ' ' || text.back() == ';'))
		text.pop_back();
	text.erase(0, std::min(text.size(), text.find_first_not_of(' ')));
	return text + (text.empty() ? "" : "; ") + ours;
}

bool has_totals(std::string_view comment)
{
	return comment.find("flexslurm:") != std::string_view::npos;
}

void LendingServer::restore_once()
{
	if (restored_)
		return;
	restored_ = true;
	const std::string path = state_path();
	LineReader reader(path, max_state_line_bytes, max_state_bytes);
	if (reader.missing())
		return; // a first start
	std::string why;
	bool ok = false;
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		// A read error ends the lines before the end marker: the book
		// refuses the state and stays empty.
		ok = book_.restore([&](std::string_view &line) { return reader.next(line); }, why);
		if (!ok && !reader.error().empty())
			why = reader.error();
	}
	if (ok)
		log_info("lending: state restored from " + path + " (" + std::to_string(active_reclaims()) +
		         " reclaim(s) in flight)");
	else
		log_error("lending: " + path + ": " + why +
		          "; starting with no loan history (the job records still say who borrows what)");
}

void LendingServer::save(BookSnapshot &&snapshot, bool urgent)
{
	if (forget_saved_.exchange(false)) {
		saved_.reset(); // control came back: another controller may have written it
		urgent_ = true;
	}
	urgent_ = urgent_ || urgent;
	const Instant now = snapshot.now;
	(void)io_.write_file(status_path(), snapshot.status_text(), false); // shown again next time
	// An event is saved at once; quiet changes (idle timers, totals) at
	// most every totals_save_interval.
	if (saved_ && saved_->same_content(snapshot))
		return;
	if (!urgent_ && saved_ && now - state_written_at_ < totals_save_interval)
		return;
	if (auto written = io_.write_file(state_path(), snapshot.state_text(), true); written) {
		saved_ = std::move(snapshot);
		state_written_at_ = now;
		++state_writes_;
		state_write_failed_ = false;
		urgent_ = false;
	} else if (!state_write_failed_) {
		log_error("lending: " + state_path() + ": " + written.error());
		state_write_failed_ = true;
	}
}

} // namespace flexslurm
