// Answers taken out of generated text and normalised for exact match, with the rules the
// harnesses use so dsalign's scores equal theirs:
//   GSM8K: lm-evaluation-harness's gsm8k-cot filters and exact_match settings;
//   MATH:  the Minerva rules (Lewkowycz et al. 2022, appendix D) as lm-evaluation-harness
//          0.4.13's minerva_math task has them: the "Final Answer: The final answer is X. I hope
//          it is correct." line, its revised normalize_final_answer, and the gold answer as the
//          last \boxed{} of the reference solution. Answers are compared as normalised strings;
//          the harness counts equal strings too and then also tries sympy equivalence, which
//          dsalign does not (so dsalign's score is at most the harness's).
#pragma once
#include <optional>
#include <string>

namespace dsalign {

inline constexpr const char* kInvalidAnswer = "[invalid]";

// The first "the answer is N" (gsm8k-cot's strict-match regex `The answer is (\-?[0-9\.\,]+).`,
// with "the" in either case, since the shots say "So the answer is"), else the first "#### N"
// (GSM8K's own answer line); kInvalidAnswer when neither is there.
std::string gsm8k_strict_answer(const std::string& response);
// The last number-like run (gsm8k-cot's flexible-extract `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last
// match); kInvalidAnswer when there is none.
std::string gsm8k_flexible_answer(const std::string& response);
// exact_match's normalisation for GSM8K: regexes_to_ignore [",", "\$", "(?s).*#### ", "\.$"],
// then lower case.
std::string gsm8k_normalise(const std::string& answer);

inline constexpr const char* kInvalidMathAnswer = "[invalidanswer]";

// X in "Final Answer: The final answer is X. I hope it is correct." (stripped), or
// kInvalidMathAnswer.
std::string minerva_final_answer(const std::string& response);
// The content of the last \boxed{...} (braces balanced) or "\boxed X" in `text`; nullopt if none.
std::optional<std::string> last_boxed_content(const std::string& text);
// normalize_final_answer (lm-eval 0.4.13): the part after the last '=', unit words removed (whole
// words first, then outside LaTeX command names), TeX spacing removed, the math inside $...$,
// \text{}, \textbf{}, \overline{}, \boxed{} unwrapped, \fracab -> \frac{a}{b}, \sqrtx -> \sqrt{x},
// \sqrt[3]x -> \sqrt[3]{x}, '$' dropped, thousands separators removed from "-?d{1,3}(,ddd)+".
std::string normalise_math_answer(std::string answer);

}  // namespace dsalign
