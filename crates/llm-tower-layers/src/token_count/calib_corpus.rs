pub const ENGLISH: &str = "The history of the lighthouse is, in many ways, the history of coastal trade itself. Long before electric lamps and automated beacons, keepers climbed narrow stairs every evening to trim wicks, polish lenses, and watch the horizon for ships in distress. Their work was lonely and often dangerous; storms could cut off supply boats for weeks, and a single mistake might send a vessel onto the rocks. Yet many keepers described the job as deeply satisfying. They kept detailed logbooks, recording the weather, passing ships, and small events of daily life. Today, historians use these records to reconstruct climate patterns and shipping routes from the nineteenth century.

Modern navigation relies on satellites rather than towers of stone, but lighthouses have not disappeared. Many still operate as backup aids, and others have become museums, hotels, or nature reserves. Visitors often say that standing at the top, with the wind pulling at their jackets and the sea stretching out in every direction, gives them a sense of perspective that is hard to find elsewhere. \"It reminds you how small you are,\" one guide told me, \"and how much effort people once made just to keep strangers safe.\"

Software engineering teams face a similar challenge when they maintain critical infrastructure. Nobody notices the systems that work, and everybody notices the ones that fail. Good engineers write tests, monitor latency, and document their decisions, so that the next person who inherits the code can understand why things are the way they are. They don't chase novelty for its own sake; they prefer boring, reliable tools. When something breaks at three o'clock in the morning, they're grateful for every alert, every runbook, and every colleague who took the time to explain a tricky configuration.

Economists have long debated whether productivity gains from automation are shared broadly or concentrated among a few firms. The evidence is mixed. Some studies find that wages rise in industries that adopt new technology quickly, while others show that workers with routine tasks lose ground. What seems clear is that education and training matter: people who can learn new skills adapt more easily, and communities that invest in schools and apprenticeships recover faster from economic shocks.
";
pub const CODE: &str = r#"use std::collections::HashMap;

/// A simple cache with a maximum size.
pub struct Cache<K, V> {
    map: HashMap<K, V>,
    capacity: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> Cache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self { map: HashMap::with_capacity(capacity), capacity }
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            let first = self.map.keys().next().cloned();
            if let Some(k) = first {
                self.map.remove(&k);
            }
        }
        self.map.insert(key, value)
    }
}
"#;
pub const JSON: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the capital of France?"}],"temperature":0.7,"max_tokens":256,"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}}}]}"#;
pub const CHINESE: &str = "人工智能正在改变我们的生活方式。从智能手机上的语音助手到自动驾驶汽车，这项技术已经渗透到社会的各个角落。然而，专家们也提醒我们，必须认真对待隐私保护和算法公平等问题。只有在技术发展与伦理规范之间找到平衡，我们才能真正从中受益。";
pub const JAPANESE: &str = "東京は世界で最も人口の多い都市の一つです。毎日何百万人もの人々が電車で通勤し、街は夜遅くまで賑わっています。伝統的な寺院と近代的な高層ビルが並ぶ風景は、多くの観光客を魅了しています。";
pub const KOREAN: &str = "서울은 대한민국의 수도이자 가장 큰 도시입니다. 이 도시는 오랜 역사와 현대적인 문화가 조화를 이루는 곳으로, 매년 수많은 관광객이 방문합니다.";
pub const RUSSIAN: &str = "Москва является столицей России и одним из крупнейших городов мира. Город известен своей богатой историей, архитектурой и культурной жизнью. Каждый год миллионы туристов приезжают сюда, чтобы увидеть Красную площадь и Кремль.";
pub const ARABIC: &str = "القاهرة هي عاصمة مصر وأكبر مدينة في العالم العربي. تشتهر المدينة بتاريخها العريق وآثارها الفرعونية، مثل الأهرامات وأبو الهول، التي تجذب ملايين السياح كل عام.";
pub const HINDI: &str = "भारत एक विशाल देश है जिसमें अनेक भाषाएँ, धर्म और संस्कृतियाँ हैं। दिल्ली इसकी राजधानी है और मुंबई इसका सबसे बड़ा आर्थिक केंद्र है। यहाँ के लोग त्योहारों को बड़े उत्साह से मनाते हैं।";
pub const EMOJI: &str = "Great job team! 🎉🎉 Let's ship it 🚀 👨‍👩‍👧‍👦 family day 🏳️‍🌈 and 👍🏽 thanks ❤️";
pub const FRENCH: &str = "La ville de Paris est célèbre pour ses musées, ses cafés et son architecture élégante. Chaque année, des millions de visiteurs découvrent la tour Eiffel, le Louvre et les quartiers historiques du Marais.";
