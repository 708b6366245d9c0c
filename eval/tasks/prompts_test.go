package tasks

import (
	"slices"
	"strings"
	"testing"
)

// The expected requests below are written from the harness task files (at
// lm-evaluation-harness 4e7e0d47, paths under lm_eval/tasks/) applied by
// hand to the original fields of each document, not from this package's
// code:
//   boolq       super_glue/boolq/default.yaml   "{{passage}}\nQuestion: {{question}}?\nAnswer:", ["no","yes"]
//   rte         glue/rte/default.yaml           "{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:", ["True","False"]
//   hellaswag   hellaswag/hellaswag.yaml, utils.py (process_docs, preprocess)
//   winogrande  winogrande/default.yaml, preprocess_winogrande.py (contexts per option, shared target)
//   arc_*       arc/arc_easy.yaml                "Question: {{question}}\nAnswer:", choices.text
//   openbookqa  openbookqa/openbookqa.yaml       question_stem, choices.text
//   piqa        piqa/piqa.yaml                   "Question: {{goal}}\nAnswer:", [sol1, sol2]
//   copa        super_glue/copa/default.yaml, utils.py (choices already carry a leading " ")
//   lambada     lambada/lambada_openai.yaml      (text minus last word, " " + last word)
// Every multiple-choice continuation is target_delimiter " " + choice
// (lm_eval/api/task.py ConfigurableTask.construct_requests).

type promptCase struct {
	task string
	line int
	want []Request
	gold int
}

var promptCases = []promptCase{
	{"boolq", 1828, mc("The sixth and final season premiered on 19 August 2018.\nQuestion: is a place to call home finished for good?\nAnswer:",
		"no", "yes"), 0},
	{"boolq", 2645, mc("The season is set for release in 2019.\nQuestion: are they going to make a punisher season 2?\nAnswer:",
		"no", "yes"), 1},
	{"rte", 2, mc("Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the Christopher Reeve Foundation.\n"+
		"Question: Christopher Reeve had an accident. True or False?\nAnswer:", "True", "False"), 1},
	{"rte", 3, mc("Yet, we now are discovering that antibiotics are losing their effectiveness against illness. Disease-causing bacteria are mutating faster than we can come up with new antibiotics to fight the new variations.\n"+
		"Question: Bacteria is winning the war against antibiotics. True or False?\nAnswer:", "True", "False"), 0},
	// ctx_b "a few women" is capitalized; nothing to preprocess.
	{"hellaswag", 1, mc("Pole vault: Pole vault is a sport where you run with a pole and stop and swing your body. A few women",
		"go down a rock and stop.", "watch from around a pole vault.", "are in the wading pool.",
		"are in the gym practicing to do this pole vault, trying to do their best."), 3},
	// WikiHow: empty ctx_b (the trailing space is stripped), " [title]" → ". ",
	// "[header]" / "[step]" / "[substeps]" / a leading "[title]" removed, then
	// double spaces collapsed once — which leaves a leading space in endings
	// that began with a bracket, and ".." where " [title]" followed a period.
	{"hellaswag", 4, mc("Sports and Fitness: How to bowl the leg spinner's variations. To bowl a googly, you grip the ball the same as you would for a leg break but hold it so your palm faces away from you. As you bowl, you bring your elbow close to your head and cock your wrist so that back of your hand faces the batsman. You spin the ball by rotating the fingers.",
		" If you're outside, the batsman only looks at the batsman as they dribble.. If you're inside, the batsman lets you line up the batsman with you.",
		"Bring your wrist back towards your head so that the ball is back in front of your body and your fist will be holding the ball. A barbell is not needed for this style of bowl.",
		"If done properly, the ball should turn from off to leg for right handers. If the batsman comes out of his crease and misses the googly, he can be stumped.",
		" Only let the ball hit your side as you come out of the ball, not your core. Remember to rotate your wrist so your hand reaches over your head, not away from it."), 2},
	{"winogrande", 1, []Request{
		{"Sarah was a much better surgeon than Maria so Sarah", " always got the easier cases."},
		{"Sarah was a much better surgeon than Maria so Maria", " always got the easier cases."}}, 1},
	{"winogrande", 407, []Request{
		{"So Jessica", " ignored their ear because Jessica has a ear infection and Felicia was fine."},
		{"So Felicia", " ignored their ear because Jessica has a ear infection and Felicia was fine."}}, 1},
	{"arc_easy", 30, mc("Question: What causes sound?\nAnswer:", "sunlight", "vibrations", "x-rays", "pitch"), 1},
	{"arc_easy", 914, mc("Question: Which is an SI unit for density?\nAnswer:", "lb", "kg", "lb/ft^3", "kg/m^3"), 3},
	{"arc_challenge", 554, mc("Question: Planets orbit\nAnswer:", "Earth.", "the Moon.", "the galaxy.", "the Sun."), 3},
	{"arc_challenge", 576, mc("Question: What is the pH level for pure water?\nAnswer:", "1.6", "2.3", "7.0", "11.2"), 2},
	{"openbookqa", 3, mc("Predators eat", "lions", "humans", "bunnies", "grass"), 2},
	{"openbookqa", 59, mc("Owls are likely to hunt at", "3pm", "2am", "6pm", "7am"), 1},
	{"piqa", 2, mc("Question: dresser\nAnswer:", "replace drawer with bobby pin", "finish, woodgrain with  bobby pin"), 1},
	{"piqa", 906, mc("Question: fist\nAnswer:", "grips house", "grips spoon"), 1},
	// convert_choice lower-cases the first letter ("I" → "i"), and the
	// harness's own leading space plus the delimiter make two spaces.
	{"copa", 33, mc("I coughed, because", " i inhaled smoke.", " i lowered my voice."), 0},
	{"copa", 1, mc("The man turned on the faucet, therefore", " the toilet filled with water.", " water flowed from the spout."), 1},
	{"lambada_openai", 4, []Request{{"Helen's heart broke a little in the face of Miss Mabel's selfless courage. She thought that because she was old, her life was of less value than the others'. For all Helen knew, Miss Mabel had a lot more years to live than she did. \"Not going to happen,\" replied", " Helen"}}, 0},
}

// mc is a multiple-choice document's requests: (ctx, " " + choice).
func mc(ctx string, choices ...string) []Request {
	rs := make([]Request, len(choices))
	for i, c := range choices {
		rs[i] = Request{ctx, " " + c}
	}
	return rs
}

func TestPromptsMatchHarness(t *testing.T) {
	docs := map[string][]Doc{}
	for _, c := range promptCases {
		tk, err := Lookup(c.task)
		if err != nil {
			t.Fatal(err)
		}
		if docs[c.task] == nil {
			_, docs[c.task] = loadDocs(t, c.task)
		}
		d := docs[c.task][c.line-firstDataLine(c.task)]
		if d.Line != c.line {
			t.Fatalf("%s: document %d is on line %d, want %d", c.task, c.line-firstDataLine(c.task), d.Line, c.line)
		}
		if got := d.Requests(tk.Kind); !slices.Equal(got, c.want) {
			t.Errorf("%s line %d:\n got %q\nwant %q", c.task, c.line, got, c.want)
		}
		if d.Gold != c.gold {
			t.Errorf("%s line %d: gold %d, want %d", c.task, c.line, d.Gold, c.gold)
		}
	}
}

// firstDataLine is the file line of the first record (RTE has a header).
func firstDataLine(task string) int {
	if task == "rte" {
		return 2
	}
	return 1
}

// TestBoolQRestoresQuestionWords pins the undoing of the gauntlet's
// " question" → "\nQuestion" rewrite inside passages.
func TestBoolQRestoresQuestionWords(t *testing.T) {
	_, docs := loadDocs(t, "boolq")
	for _, c := range []struct {
		line int
		want string
	}{
		{46, "Four contestants answer general knowledge questions to win counters"},
		{2670, "Patrick is questioned by the police"},
		{3191, "Maybe.'' Questioned at the end of the fourth season"},
		// The source title "Snakes in Question" loses its capital (documented).
		{2418, "``Snakes in question: The Smithsonian Answer Book''"},
	} {
		ctx := docs[c.line-1].Context
		if !strings.Contains(ctx, c.want) {
			t.Errorf("line %d: %q not in %q", c.line, c.want, ctx)
		}
	}
	for _, d := range docs {
		body := strings.TrimSuffix(d.Context, "\nAnswer:")
		if strings.Count(body, "\nQuestion") != 1 || !strings.HasSuffix(body, "?") || strings.HasPrefix(body, "Passage:") {
			t.Fatalf("line %d: prompt is not \"<passage>\\nQuestion: <q>?\\nAnswer:\": %q", d.Line, d.Context)
		}
	}
}

// TestRTEUnquotesCSV: a sentence holding a quote character is CSV-quoted
// in the TSV (file line 8); the prompt must have the bare sentence.
func TestRTEUnquotesCSV(t *testing.T) {
	_, docs := loadDocs(t, "rte")
	ctx := docs[6].Context
	if !strings.HasPrefix(ctx, "singer and actress Britney Spears, 24,") || !strings.Contains(ctx, `irreconcilable differences" as the reason`) {
		t.Fatalf("CSV field not unquoted: %q", ctx)
	}
	if len(docs) != 277 {
		t.Fatalf("%d RTE documents, want 277", len(docs))
	}
}
