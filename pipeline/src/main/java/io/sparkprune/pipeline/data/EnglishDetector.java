package io.sparkprune.pipeline.data;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Tells English text from the other languages of the Europarl corpus with a transparent
 * function-word count, no model involved.
 *
 * <p>Rule. Tokens are the maximal runs of letters ({@link Character#isLetter(int)}), lower-cased
 * with {@link Locale#ROOT}; T is their number. For each language of {@link #functionWords()} (23 to
 * 47 of its most frequent function words each; English, German, French, Italian, Spanish,
 * Portuguese, Dutch, Swedish, Danish, Finnish, Greek), count the tokens that are in its list. With
 * E the English count and C the largest count of any other language, the text is English iff
 * <ul>
 *   <li>{@code E >= } {@value #MIN_ENGLISH_WORDS} (enough evidence),</li>
 *   <li>{@code E >= } {@value #MIN_ENGLISH_RATIO}{@code  * T} (English function words are frequent:
 *       on the Europarl sample, English lines score 0.28 to 0.6, all others at most 0.13), and</li>
 *   <li>{@code E >= } {@value #MIN_DOMINANCE}{@code  * C} (English beats every other list clearly;
 *       lists share a few words such as "is" (nl), "on" (fi), "at", "for" (da)).</li>
 * </ul>
 * Languages without a list (Bulgarian, Czech, Polish, Hungarian, ...) share no words with the
 * English list, so their E stays near 0 and they are rejected by the ratio.
 */
public final class EnglishDetector {

    /** Minimum number of English function words. */
    public static final int MIN_ENGLISH_WORDS = 2;
    /** Minimum fraction of tokens that are English function words. */
    public static final double MIN_ENGLISH_RATIO = 0.2;
    /** Minimum ratio of the English count to the best other language's count. */
    public static final int MIN_DOMINANCE = 2;

    private static final Map<String, Set<String>> WORDS = new LinkedHashMap<>();
    private static final String[] LANGUAGES;
    private static final Map<String, Integer> LANGUAGE_BITS = new java.util.HashMap<>(); // word -> bit i set if in LANGUAGES[i]

    static {
        put("en", "the of and to is that for this which with are be have has it not we on by as from will would should been"
                + " was were there their they these those an at or but also what who our all can must more very its than");
        put("de", "der die das und ist nicht den dem des ein eine einer sich mit auf für von zu wir ich es auch wird werden sind"
                + " daß dass im bei oder aber wie noch nur über");
        put("fr", "le la les des et est une du que qui dans pour pas nous sur il au aux ce cette sont par plus ne avec mais ont"
                + " été être ses leur");
        put("it", "il la che di della delle del dei per non una sono è gli alla nel nella anche questo questa più come ci si ha"
                + " essere lo degli");
        put("es", "el la los las que de del y en es una por para con no se lo al su sus más como esta este pero ha han ser muy"
                + " también");
        put("pt", "o os as que de do da dos das em é um uma para com não se por no na mais como ao à também foi ser este esta"
                + " são");
        put("nl", "de het een en van is dat die niet te op voor met zijn wordt door ook aan er maar wij ik dit naar om bij nog"
                + " worden");
        put("sv", "och att det som är en ett av för på med till inte den har de vi jag om kommissionen från detta men kan ska"
                + " skall också eller");
        put("da", "og at det som er en et af for på med til ikke den har de vi jeg om fra dette men kan skal også eller der vil");
        put("fi", "ja on että ei se ovat myös tämä joka mutta kanssa ole olla tai kuin niin tässä vain sekä jotka mitä siitä"
                + " meidän");
        put("el", "και το η της του τα να την των για στην με που ότι είναι δεν στο οι από σε θα τη τις ένα μια");
        LANGUAGES = WORDS.keySet().toArray(new String[0]);
        for (int i = 0; i < LANGUAGES.length; i++) {
            for (String w : WORDS.get(LANGUAGES[i])) {
                LANGUAGE_BITS.merge(w, 1 << i, (a, b) -> a | b);
            }
        }
    }

    private EnglishDetector() {
    }

    private static void put(String language, String words) {
        WORDS.put(language, Set.of(words.split(" ")));
    }

    /**
     * @return language code → its function-word list (unmodifiable; "en" first)
     */
    public static Map<String, Set<String>> functionWords() {
        return java.util.Collections.unmodifiableMap(WORDS);
    }

    /**
     * The counts behind the decision for one text.
     *
     * @param tokens T, letter-run tokens in the text
     * @param english E, tokens in the English list
     * @param bestOther the other language with the most list tokens ("" when none has any)
     * @param bestOtherCount C, its count
     */
    public record Score(int tokens, int english, String bestOther, int bestOtherCount) {
        /** @return E / T, 0 for a text without tokens */
        public double englishRatio() {
            return tokens == 0 ? 0.0 : (double) english / tokens;
        }

        /** @return the decision of the class rule */
        public boolean isEnglish() {
            return english >= MIN_ENGLISH_WORDS && english >= MIN_ENGLISH_RATIO * tokens && english >= MIN_DOMINANCE * bestOtherCount;
        }
    }

    /**
     * @param text any text
     * @return its token and function-word counts
     */
    public static Score score(String text) {
        Objects.requireNonNull(text, "text");
        int[] counts = new int[LANGUAGES.length]; // LANGUAGES[0] is "en"
        int tokens = 0;
        int i = 0;
        int n = text.length();
        while (i < n) {
            int cp = text.codePointAt(i);
            if (!Character.isLetter(cp)) {
                i += Character.charCount(cp);
                continue;
            }
            int start = i;
            while (i < n && Character.isLetter(text.codePointAt(i))) {
                i += Character.charCount(text.codePointAt(i));
            }
            tokens++;
            Integer bits = LANGUAGE_BITS.get(text.substring(start, i).toLowerCase(Locale.ROOT));
            if (bits != null) {
                for (int l = 0; l < LANGUAGES.length; l++) {
                    if ((bits & (1 << l)) != 0) {
                        counts[l]++;
                    }
                }
            }
        }
        String best = "";
        int bestCount = 0;
        for (int l = 1; l < LANGUAGES.length; l++) {
            if (counts[l] > bestCount) {
                best = LANGUAGES[l];
                bestCount = counts[l];
            }
        }
        return new Score(tokens, counts[0], best, bestCount);
    }

    /**
     * @param text any text
     * @return true when the class rule calls it English
     */
    public static boolean isEnglish(String text) {
        return score(text).isEnglish();
    }
}
